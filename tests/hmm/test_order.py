"""States numbered in the order runs first reach them, whatever labels EM lands on."""

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM

from trainmap.hmm.fit import fit_state_count, model_from_json, model_to_json
from trainmap.hmm.order import first_reach_order, number_by_first_reach, permute_model


def test_order_is_by_mean_first_visit_with_unvisited_last():
    paths = [np.array([2, 2, 0, 0, 1]), np.array([2, 0, 0, 0, 0]), np.array([2, 2, 2, 0, 3])]
    # first visits: state 2 at 0,0,0; state 0 at 2,1,3 (mean 2); 1 at 4; 3 at 4; 4 never
    assert first_reach_order(paths, 5) == [2, 0, 1, 3, 4]


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_permutation_keeps_likelihoods_and_relabels_paths(covariance):
    model = GaussianHMM(n_components=3, covariance_type=covariance, init_params="")
    model.startprob_ = np.array([0.0, 0.0, 1.0])
    model.transmat_ = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.9]])
    model.means_ = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, -3.0]])
    if covariance == "full":
        model.covars_ = np.array([np.eye(2) * s + 0.3 for s in (1.0, 2.0, 3.0)])
    else:
        model.covars_ = np.array([[1.0, 1.5], [2.0, 0.5], [3.0, 1.0]])
    X, _ = model.sample(60, random_state=1)
    lengths = np.array([30, 30])
    before = model.score(X, lengths), model.decode(X, lengths)[1]
    renamed, order = number_by_first_reach(model, X, lengths)
    assert order == [2, 0, 1]  # runs start in 2, move to 0, end in 1
    assert renamed.score(X, lengths) == pytest.approx(before[0], rel=1e-12)
    assert np.array_equal(np.asarray(order)[renamed.decode(X, lengths)[1]], before[1])
    assert renamed.startprob_[0] == 1.0
    again = model_from_json(model_to_json(renamed, ["a", "b"]))
    assert again.score(X, lengths) == pytest.approx(before[0], rel=1e-12)


def test_permute_model_moves_every_parameter_with_its_state():
    model = GaussianHMM(n_components=2, covariance_type="diag", init_params="")
    model.startprob_ = np.array([0.25, 0.75])
    model.transmat_ = np.array([[0.6, 0.4], [0.1, 0.9]])
    model.means_ = np.array([[1.0], [2.0]])
    model.n_features = 1
    model.covars_ = np.array([[0.5], [4.0]])
    permute_model(model, [1, 0])
    assert model.startprob_.tolist() == [0.75, 0.25]
    assert model.transmat_.tolist() == [[0.9, 0.1], [0.4, 0.6]]
    assert model.means_.ravel().tolist() == [2.0, 1.0]
    assert np.diagonal(model.covars_, axis1=1, axis2=2).ravel().tolist() == [4.0, 0.5]


def test_kept_models_are_numbered_from_the_start_state_whatever_the_seed():
    rng = np.random.default_rng(0)
    means = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    runs = [np.repeat(means, [10, 10, 10], axis=0) + rng.normal(0, 0.3, (30, 2)) for _ in range(8)]
    fit = (np.concatenate(runs[:6]), np.full(6, 30))
    val = (np.concatenate(runs[6:]), np.full(2, 30))
    for seed in range(4):
        result = fit_state_count(
            fit, val, 3, ["a", "b"], restarts=2, n_iter=50, covariance="diag", seed=seed
        )
        assert np.allclose(result["means"], means, atol=0.2)  # S0 start, S1 next, S2 last
        assert sorted(result["state_order"]) == [0, 1, 2]
