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
    assert np.isfinite(far).all() and np.isclose(far.sum(), 1.0)
    np.testing.assert_allclose(far, fil.predict(first))


def test_scale_folded_into_the_whitening_equals_z_scoring_first():
    """Values in the features' units with ``scale`` = the z-scores without it; a feature
    with SD 0 (constant over the fit runs) counts as z = 0."""
    model = full_model(3)
    data = model_to_json(model, ["a", "b", "c", "d"])
    mean, sd = np.array([1.0, -2.0, 5.0, 0.5]), np.array([2.0, 0.5, 0.0, 3.0])
    Z = np.random.default_rng(1).normal(size=(25, 4))
    Z[:, 2] = 0.0
    X = Z * sd + mean
    X[:, 2] = np.random.default_rng(2).normal(size=25)  # ignored: its SD is 0
    scaled = GaussianFilter(data, scale=(mean, sd)).filter(X)
    np.testing.assert_allclose(scaled, GaussianFilter(data).filter(Z), atol=1e-10)


def test_the_log_space_fallback_matches_the_oracle_where_the_scaled_step_underflows():
    """State 2 alone explains the point but the prior gives it no mass: the scaled
    joint underflows to 0 and the step is redone in log space."""
    model = full_model(0)  # startprob 0 on state 2, transmat[2, 0] = 0
    model.means_[2] = 40.0
    model.covars_[2] = np.eye(4) * 0.01
    data = model_to_json(model, ["a", "b", "c", "d"])
    X = np.vstack([np.full((1, 4), 40.0), np.zeros((3, 4))])
    fil = GaussianFilter(data)
    first = fil.step(X[0], None)
    joint = fil.start * np.exp(fil.log_emission(X[0]) - fil.log_emission(X[0]).max())
    assert joint.sum() <= 1e-250  # the case under test
    oracle = filtering_posteriors(model_from_json(data), X)
    np.testing.assert_allclose(first, oracle[0], atol=1e-10)
    np.testing.assert_allclose(fil.filter(X), oracle, atol=1e-10)


def test_logsumexp_of_minus_infinity_is_minus_infinity():
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    np.testing.assert_allclose(logsumexp(np.log(np.array([[1.0, 3.0]])), axis=1), [np.log(4)])
