"""Forward filtering (trainmap.hmm.filtering) against brute-force enumeration and hmmlearn."""

import itertools

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM

from trainmap.hmm.filtering import (
    feature_importance,
    filtering_posteriors,
    forward_log,
    log_emission_densities,
    log_filtering_posteriors,
    posterior_gradients,
)


def random_model(n_states: int, n_features: int, covariance: str, seed: int) -> GaussianHMM:
    rng = np.random.default_rng(seed)
    model = GaussianHMM(n_components=n_states, covariance_type=covariance)
    model.n_features = n_features
    model.startprob_ = rng.dirichlet(np.ones(n_states))
    model.transmat_ = rng.dirichlet(np.ones(n_states), size=n_states)
    model.means_ = rng.normal(scale=1.5, size=(n_states, n_features))
    if covariance == "full":
        a = rng.normal(size=(n_states, n_features, n_features))
        model.covars_ = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(n_features)
    else:
        model.covars_ = rng.uniform(0.3, 2.0, size=(n_states, n_features))
    return model


def gaussian_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """The oracle density, written out."""
    d = x - mean
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (len(x) * np.log(2 * np.pi) + logdet + d @ np.linalg.solve(cov, d))


def brute_force(model: GaussianHMM, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Filtering posteriors (T, K) and log p(z_1..T) by summing over every state path."""
    n_states, covs = model.n_components, model.covars_
    dens = np.array(
        [[np.exp(gaussian_logpdf(x, model.means_[k], covs[k])) for k in range(n_states)] for x in X]
    )
    posteriors = np.zeros((len(X), n_states))
    total = 0.0
    for t in range(len(X)):
        for path in itertools.product(range(n_states), repeat=t + 1):
            p = model.startprob_[path[0]] * dens[0, path[0]]
            for s in range(1, t + 1):
                p *= model.transmat_[path[s - 1], path[s]] * dens[s, path[s]]
            posteriors[t, path[-1]] += p
        if t == len(X) - 1:
            total = posteriors[t].sum()
        posteriors[t] /= posteriors[t].sum()
    return posteriors, float(np.log(total))


@pytest.mark.parametrize(
    ("n_states", "length", "covariance", "seed"),
    [(2, 3, "full", 0), (3, 4, "full", 1), (2, 4, "diag", 2), (3, 3, "diag", 3)],
)
def test_filtering_matches_brute_force_and_hmmlearn(n_states, length, covariance, seed):
    model = random_model(n_states, 3, covariance, seed)
    X = np.random.default_rng(seed + 10).normal(size=(length, 3))
    expected, loglik = brute_force(model, X)
    np.testing.assert_allclose(filtering_posteriors(model, X), expected, rtol=1e-10)
    _, ours = forward_log(model, X)
    assert ours == pytest.approx(loglik, rel=1e-10)
    assert ours == pytest.approx(model.score(X), rel=1e-10)


def test_log_emission_densities_match_formula():
    model = random_model(3, 4, "full", 5)
    X = np.random.default_rng(6).normal(size=(5, 4))
    expected = [
        [gaussian_logpdf(x, model.means_[k], model.covars_[k]) for k in range(3)] for x in X
    ]
    np.testing.assert_allclose(log_emission_densities(model, X), expected, rtol=1e-12)


def test_zero_probabilities_give_minus_inf_not_nan():
    model = random_model(2, 2, "diag", 7)
    model.startprob_ = np.array([1.0, 0.0])
    model.transmat_ = np.array([[0.9, 0.1], [0.0, 1.0]])
    X = np.random.default_rng(8).normal(size=(6, 2))
    log_post = log_filtering_posteriors(model, X)
    assert log_post[0, 1] == -np.inf
    assert not np.isnan(log_post).any()
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gradient_matches_finite_differences(covariance):
    """d log p(s_t = k | z_1..t) / d z_t, perturbing only z_t, central differences."""
    model = random_model(3, 4, covariance, 11)
    X = np.random.default_rng(12).normal(size=(6, 4))
    gradients = posterior_gradients(model, X)
    eps = 1e-6
    for t in (0, 3, 5):
        numeric = np.zeros((3, 4))
        for f in range(4):
            up, down = X.copy(), X.copy()
            up[t, f] += eps
            down[t, f] -= eps
            delta = (
                log_filtering_posteriors(model, up)[t] - log_filtering_posteriors(model, down)[t]
            )
            numeric[:, f] = delta / (2 * eps)
        np.testing.assert_allclose(gradients[t], numeric, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(feature_importance(model, X), np.abs(gradients))


def test_gradient_rejects_wrong_feature_count():
    model = random_model(2, 3, "diag", 0)
    with pytest.raises(ValueError, match="shape"):
        posterior_gradients(model, np.zeros((4, 2)))
