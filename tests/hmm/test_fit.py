"""HMM fits: brute-force oracles, equality with plain hmmlearn, the covariance guard,
restarts and JSON persistence."""

import itertools
import json

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from threadpoolctl import threadpool_limits

from trainmap.hmm import fit as hmm_module
from trainmap.hmm.fit import (
    HMMFitError,
    fit_restart,
    fit_state_count,
    model_from_json,
    n_free_parameters,
    restart_seed,
    score_model,
)
from trainmap.seeding import derive_seed


@pytest.fixture(autouse=True)
def one_thread():
    """As in the fit_hmm jobs: threaded BLAS on tiny matrices is slow on a busy machine."""
    with threadpool_limits(limits=1):
        yield


def random_params(n_states: int, n_features: int, covariance: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    if covariance == "full":
        a = rng.normal(size=(n_states, n_features, n_features))
        covars = (a @ a.transpose(0, 2, 1) + 0.5 * np.eye(n_features)).tolist()
    else:
        covars = rng.uniform(0.3, 2.0, size=(n_states, n_features)).tolist()
    return {
        "n_states": n_states,
        "covariance": covariance,
        "features": [f"f{i}" for i in range(n_features)],
        "startprob": rng.dirichlet(np.ones(n_states)).tolist(),
        "transmat": rng.dirichlet(np.ones(n_states), size=n_states).tolist(),
        "means": rng.normal(0, 1.5, size=(n_states, n_features)).tolist(),
        "covars": covars,
    }


def path_log_probs(params: dict, X: np.ndarray) -> dict[tuple, float]:
    """log p(path, X) of every state path: the oracle, K**T terms written out."""
    k = params["n_states"]
    covars = np.asarray(params["covars"])
    if params["covariance"] == "diag":
        covars = np.array([np.diag(c) for c in covars])
    emission = np.array(
        [
            [multivariate_normal(params["means"][s], covars[s]).logpdf(x) for s in range(k)]
            for x in X
        ]
    )
    start, trans = np.log(params["startprob"]), np.log(params["transmat"])
    out = {}
    for path in itertools.product(range(k), repeat=len(X)):
        lp = start[path[0]] + emission[0, path[0]]
        for t in range(1, len(X)):
            lp += trans[path[t - 1], path[t]] + emission[t, path[t]]
        out[path] = lp
    return out


@pytest.mark.parametrize(
    ("n_states", "length", "covariance"), [(2, 3, "full"), (3, 4, "full"), (3, 3, "diag")]
)
def test_score_and_viterbi_match_brute_force(n_states, length, covariance):
    params = random_params(n_states, 2, covariance, seed=n_states * 10 + length)
    model = model_from_json(params)
    rng = np.random.default_rng(1)
    runs = [rng.normal(size=(length, 2)), rng.normal(size=(length, 2))]
    for X in runs:
        paths = path_log_probs(params, X)
        best = max(paths, key=paths.get)
        log_prob, decoded = model.decode(X, algorithm="viterbi")
        assert model.score(X) == pytest.approx(logsumexp(list(paths.values())), rel=1e-10)
        assert tuple(decoded) == best
        assert log_prob == pytest.approx(paths[best], rel=1e-10)
    # several runs: lengths keep them apart, the log-likelihoods add up
    X, lengths = np.concatenate(runs), [length, length]
    total = sum(logsumexp(list(path_log_probs(params, r).values())) for r in runs)
    assert model.score(X, lengths) == pytest.approx(total, rel=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_parameter_count_is_hmmlearns(covariance):
    model = model_from_json(random_params(3, 4, covariance, seed=0))
    X = np.random.default_rng(0).normal(size=(50, 4))
    p = (model.bic(X) - model.aic(X)) / (np.log(len(X)) - 2)
    assert round(p) == n_free_parameters(3, 4, covariance)
    assert p == pytest.approx(n_free_parameters(3, 4, covariance), rel=1e-9)


def sample_runs(params: dict, n_runs: int, length: int, seed: int):
    model = model_from_json(params)
    runs = [model.sample(length, random_state=seed + r)[0] for r in range(n_runs)]
    return np.concatenate(runs), np.full(n_runs, length)


@pytest.fixture(scope="module")
def data():
    params = random_params(3, 3, "full", seed=5)
    return sample_runs(params, 8, 40, seed=0), sample_runs(params, 3, 40, seed=100)


@pytest.mark.parametrize(("covariance", "tol"), [("full", 0.0), ("diag", 0.0), ("full", 1e-2)])
def test_default_fit_is_a_plain_hmmlearn_fit_on_well_conditioned_data(data, covariance, tol):
    """Same seed (so the same k-means initialisation), same iterations: the guard never
    acts and parameters and scores are hmmlearn's, to float tolerance."""
    fit, val = data
    seed = restart_seed(0, 3, 0)
    ours, report = fit_restart(*fit, 3, covariance=covariance, n_iter=6, seed=seed, tol=tol)
    reference = GaussianHMM(
        3,
        covariance_type=covariance,
        n_iter=6,
        tol=tol,
        random_state=seed,
        implementation=hmm_module.IMPLEMENTATION,
    )
    reference.fit(*fit)
    assert report["guard"] == {"rule": "singular", "iterations": 0, "states": []}
    assert report["iterations"] == len(reference.monitor_.history) == reference.monitor_.iter
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), rtol=1e-10)
    ours_scores, reference_scores = score_model(ours, fit, val), score_model(reference, fit, val)
    for name in hmm_module.SCORES:
        assert ours_scores[name] == pytest.approx(reference_scores[name], rel=1e-10)


def test_unknown_guard_is_refused_by_name(data):
    (X, lengths), _ = data
    with pytest.raises(ValueError, match="covariance_guard: 'loose'"):
        fit_restart(X, lengths, 2, covariance="full", n_iter=2, seed=0, covariance_guard="loose")


def test_stops_at_tolerance(data):
    (X, lengths), _ = data
    _, report = fit_restart(X, lengths, 1, covariance="diag", n_iter=30, seed=1, tol=1e-2)
    assert report["converged"] and report["iterations"] < 30


def test_restart_seeds_come_from_config_seed_k_and_restart(data):
    fit, val = data
    result = fit_state_count(
        fit, val, 2, ["a", "b", "c"], restarts=3, n_iter=3, covariance="diag", seed=7
    )
    seeds = [r["seed"] for r in result["restarts"]]
    assert seeds == [derive_seed(7, 2, r) % 2**32 for r in range(3)]
    assert len(set(seeds)) == 3
    again = fit_state_count(
        fit, val, 2, ["a", "b", "c"], restarts=3, n_iter=3, covariance="diag", seed=7
    )
    assert again == result


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_json_round_trip_gives_identical_scores_and_paths(data, covariance):
    fit, val = data
    result = fit_state_count(
        fit, val, 3, ["a", "b", "c"], restarts=2, n_iter=5, covariance=covariance, seed=0
    )
    stored = json.loads(json.dumps(result))
    rebuilt = model_from_json(stored)
    assert score_model(rebuilt, fit, val) == {k: stored[k] for k in hmm_module.SCORES}
    kept = result["restarts"][result["kept_restart"]]
    original, _ = fit_restart(*fit, 3, covariance=covariance, n_iter=5, seed=kept["seed"])
    X = np.concatenate([fit[0], val[0]])
    lengths = np.concatenate([fit[1], val[1]])
    # the kept model is EM's, its states renumbered in first-reach order (state_order)
    relabelled = np.asarray(stored["state_order"])[rebuilt.predict(X, lengths)]
    np.testing.assert_array_equal(relabelled, original.predict(X, lengths))
    shape = (3, 3, 3) if covariance == "full" else (3, 3)
    assert np.asarray(stored["covars"]).shape == shape
    assert stored["features"] == ["a", "b", "c"]


def test_kept_model_has_best_validation_loglik_and_mean_is_reported(data):
    fit, val = data
    result = fit_state_count(
        fit, val, 3, ["a", "b", "c"], restarts=3, n_iter=4, covariance="full", seed=0
    )
    logliks = [r["val_loglik"] for r in result["restarts"]]
    assert result["val_loglik"] == max(logliks)
    assert result["kept_restart"] == int(np.argmax(logliks))
    assert result["mean"]["val_bic"] == pytest.approx(
        np.mean([r["val_bic"] for r in result["restarts"]])
    )
    assert result["sd"]["val_loglik"] == pytest.approx(np.std(logliks))
    # BIC = -2 logL + p ln(n_val), p from hmmlearn (checked above)
    p, n = result["n_params"], result["n_val_rows"]
    assert result["val_bic"] == pytest.approx(-2 * result["val_loglik"] + p * np.log(n))


def collapsing_data() -> tuple[np.ndarray, list[int]]:
    """Two broad clusters and one point repeated 6 times: a state that takes the repeated
    point has no spread at all, its covariance collapses to (numerically) singular."""
    rng = np.random.default_rng(0)
    broad = np.concatenate([rng.normal(0, 1, size=(60, 3)), rng.normal(6, 1, size=(60, 3))])
    X = np.concatenate([broad[:60], np.tile([[30.0, -30.0, 30.0]], (6, 1)), broad[60:]])
    return X, [42, 42, 42]


def test_collapsing_state_makes_the_singular_guard_act_and_say_so():
    X, lengths = collapsing_data()
    model, report = fit_restart(X, lengths, 3, covariance="full", n_iter=5, seed=0, tol=0.0)
    guard = report["guard"]
    assert guard["rule"] == "singular" and guard["iterations"] > 0 and len(guard["states"]) == 1
    (state,) = guard["states"]
    np.testing.assert_allclose(model.means_[state], [30.0, -30.0, 30.0])
    eigenvalues = np.linalg.eigvalsh(model.covars_[state])
    assert eigenvalues[0] >= 0.99 * hmm_module.RELATIVE_FLOOR * eigenvalues[-1]
    assert eigenvalues[0] < 1e-9  # floored near machine precision, not at min_covar
    assert np.isfinite(model.score(X, lengths))
    # The other states are untouched: the fit elsewhere is hmmlearn's.
    others = [k for k in range(3) if k != state]
    assert np.linalg.eigvalsh(model.covars_[others]).min() > 0.1


def test_hmmlearns_diagonal_prior_keeps_the_same_state_from_collapsing():
    # covars_prior (1e-2) / posterior mass is a floor on every diagonal variance.
    X, lengths = collapsing_data()
    model, report = fit_restart(X, lengths, 3, covariance="diag", n_iter=5, seed=0, tol=0.0)
    assert report["guard"]["iterations"] == 0
    assert np.diagonal(model.covars_, axis1=1, axis2=2).min() == pytest.approx(1e-2 / 6)


def test_absolute_guard_keeps_the_earlier_floor_and_changes_the_fit():
    # A duplicated feature makes every fitted full covariance singular (rank F - 1).
    rng = np.random.default_rng(0)
    base = np.concatenate([rng.normal(0, 1, size=(60, 2)), rng.normal(5, 1, size=(60, 2))])
    X = np.column_stack([base, base[:, 0]])
    lengths = [30, 30, 30, 30]
    options = {"covariance": "full", "n_iter": 5, "seed": 0, "tol": 0.0, "min_covar": 1e-3}
    model, report = fit_restart(X, lengths, 2, covariance_guard="absolute", **options)
    assert report["guard"]["rule"] == "absolute"
    assert report["guard"]["iterations"] > 0 and report["guard"]["states"] == [0, 1]
    assert np.linalg.eigvalsh(model.covars_).min() >= 1e-3 * (1 - 1e-6)
    assert np.isfinite(model.score(X, lengths))
    # The singular guard also acts here (rank-deficient), but only near machine precision.
    singular, report = fit_restart(X, lengths, 2, **options)
    assert report["guard"]["iterations"] > 0
    assert np.linalg.eigvalsh(singular.covars_).min() < 1e-9
    assert singular.score(X, lengths) > model.score(X, lengths)


def test_guard_counts_are_reported_per_restart_in_the_k_json():
    X, lengths = collapsing_data()
    fit, val = (X, np.array(lengths)), (X[:42], np.array([42]))
    result = fit_state_count(
        fit, val, 3, ["a", "b", "c"], restarts=3, n_iter=4, covariance="full", seed=0
    )
    per_restart = [r["guard"]["iterations"] for r in result["restarts"]]
    assert result["guard"]["per_restart"] == per_restart
    assert result["guard"]["rule"] == "singular" and any(per_restart)
    kept = result["restarts"][result["kept_restart"]]["guard"]
    assert result["guard"]["iterations"] == kept["iterations"]
    assert result["options"]["covariance_guard"] == "singular"


def test_a_failed_restart_is_recorded_and_all_failing_raises(data, monkeypatch):
    fit, val = data
    real = hmm_module.fit_restart
    bad_seed = restart_seed(0, 2, 0)

    def flaky(*args, seed, **kwargs):
        if seed == bad_seed:
            raise FloatingPointError("EM produced non-finite means")
        return real(*args, seed=seed, **kwargs)

    monkeypatch.setattr(hmm_module, "fit_restart", flaky)
    options = {"restarts": 2, "n_iter": 3, "covariance": "diag", "seed": 0}
    result = fit_state_count(fit, val, 2, ["a", "b", "c"], **options)
    assert result["n_failed"] == 1 and result["kept_restart"] == 1
    assert "non-finite" in result["restarts"][0]["error"]
    assert result["restarts"][0]["val_bic"] is None
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN for the failed restart

    bad_seed = restart_seed(0, 2, 1)
    options["restarts"] = 1
    monkeypatch.setattr(hmm_module, "restart_seed", lambda *a: bad_seed)
    with pytest.raises(HMMFitError, match="K=2: all 1 restarts failed"):
        fit_state_count(fit, val, 2, ["a", "b", "c"], **options)


def test_an_underflow_of_scaled_em_is_refit_in_log_space(data, monkeypatch):
    """hmmlearn's scaled forward pass raises on underflow; the same restart reruns in log
    space and says so, where it would otherwise be lost as a failed restart."""
    (X, lengths), _ = data
    original = GaussianHMM._fit_scaling

    def underflows(self, sub_X):
        raise ValueError("forward pass failed with underflow; consider using implementation='log'")

    monkeypatch.setattr(GaussianHMM, "_fit_scaling", underflows)
    model, report = fit_restart(X, lengths, 3, covariance="full", n_iter=4, seed=1, tol=0)
    assert report["implementation"] == "log" and model.implementation == "log"
    reference = GaussianHMM(3, covariance_type="full", n_iter=4, tol=0, random_state=1)
    np.testing.assert_allclose(model.means_, reference.fit(X, lengths).means_, rtol=1e-10)
    monkeypatch.setattr(GaussianHMM, "_fit_scaling", original)
    _, report = fit_restart(X, lengths, 3, covariance="full", n_iter=4, seed=1, tol=0)
    assert report["implementation"] == hmm_module.IMPLEMENTATION
