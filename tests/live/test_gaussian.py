"""The NumPy forward step against the SciPy/hmmlearn filter (trainmap.hmm.filtering)."""

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from planted import planted_model

from trainmap.hmm.filtering import filtering_posteriors
from trainmap.hmm.fit import model_from_json, model_to_json
from trainmap.live.gaussian import GaussianFilter, logsumexp


def full_model(seed: int = 0) -> GaussianHMM:
    rng = np.random.default_rng(seed)
    k, f = 3, 4
    model = GaussianHMM(n_components=k, covariance_type="full")
    model.n_features = f
    model.startprob_ = np.array([0.7, 0.3, 0.0])
    transmat = rng.uniform(size=(k, k))
    transmat[2, 0] = 0.0  # a zero transition: -inf in log space, never NaN
    model.transmat_ = transmat / transmat.sum(axis=1, keepdims=True)
    model.means_ = rng.normal(size=(k, f)) * 2
    a = rng.normal(size=(k, f, f))
    model.covars_ = a @ a.transpose(0, 2, 1) + 0.3 * np.eye(f)
    return model


@pytest.mark.parametrize("model", [full_model(0), full_model(1), planted_model()])
def test_the_numpy_filter_matches_filtering_posteriors(model):
    X = np.random.default_rng(5).normal(size=(30, model.means_.shape[1])) * 1.5
    data = model_to_json(model, [f"f{i}" for i in range(model.means_.shape[1])])
    ours = GaussianFilter(data).filter(X)
    oracle = filtering_posteriors(model_from_json(data), X)
    np.testing.assert_allclose(ours, oracle, atol=1e-10)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_emissions_match_the_density():
    model = full_model(2)
    data = model_to_json(model, ["a", "b", "c", "d"])
    z = np.array([0.3, -1.0, 2.0, 0.1])
    from scipy.stats import multivariate_normal

    expected = [
        multivariate_normal(m, c).logpdf(z)
        for m, c in zip(model.means_, model.covars_, strict=True)
    ]
    np.testing.assert_allclose(GaussianFilter(data).log_emission(z), expected, rtol=1e-12)


def test_a_point_far_from_every_state_keeps_the_prior_instead_of_nan():
    data = model_to_json(planted_model(), ["a", "b", "c", "d"])
    fil = GaussianFilter(data)
    first = fil.step(np.zeros(4), None)
    far = fil.step(np.full(4, 1e200), first)
    assert np.isfinite(np.exp(far)).all() and np.isclose(np.exp(far).sum(), 1.0)


def test_logsumexp_of_minus_infinity_is_minus_infinity():
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    np.testing.assert_allclose(logsumexp(np.log(np.array([[1.0, 3.0]])), axis=1), [np.log(4)])
