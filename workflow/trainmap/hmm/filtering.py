"""Forward filtering for a Gaussian HMM, and the feature importance it defines.

hmmlearn exposes the forward lattice only through private functions, so the workflow keeps
its own log-space forward pass (checked against brute-force enumeration and hmmlearn's
``score`` in tests/hmm/test_filtering.py). All functions work on one run at a time.

Notation (METHOD.md section 5): ``z_t`` is the feature vector at checkpoint t, ``s_t`` the
hidden state, ``mu_k`` and ``P_k`` the mean and covariance of state k.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp

if TYPE_CHECKING:  # hmmlearn imports scikit-learn (~0.8 s): jobs that neither fit nor
    from hmmlearn.hmm import GaussianHMM  # decode do not pay for it


def _check_sequence(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.means_.shape[1]:
        raise ValueError(f"expected X of shape (T, {model.means_.shape[1]}), got {X.shape}")
    return X


def covariances(model: GaussianHMM) -> np.ndarray:
    """Full covariance matrices P_k: (n_states, n_features, n_features).

    hmmlearn's ``covars_`` already expands diag/spherical/tied storage to full matrices.
    """
    return np.asarray(model.covars_, dtype=np.float64)


def precisions(model: GaussianHMM) -> np.ndarray:
    """P_k^-1 for every state: (n_states, n_features, n_features); diagonal for diag models."""
    return np.linalg.inv(covariances(model))


def log_emission_densities(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    """log N(z_t; mu_k, P_k) for every checkpoint and state: (T, n_states)."""
    from scipy.stats import multivariate_normal  # ~0.5 s, for this function only

    X = _check_sequence(model, X)
    covs = covariances(model)
    columns = [
        multivariate_normal(mean=mean, cov=cov).logpdf(X).reshape(len(X))
        for mean, cov in zip(model.means_, covs, strict=True)
    ]
    return np.stack(columns, axis=1)


def forward_log(model: GaussianHMM, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Log forward lattice log p(z_1..t, s_t = k): (T, n_states), and log p(z_1..T).

    Zero start or transition probabilities give -inf entries, never NaN.
    """
    log_b = log_emission_densities(model, X)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the intended value
        log_pi = np.log(model.startprob_)
        log_a = np.log(model.transmat_)
    log_alpha = np.empty_like(log_b)
    log_alpha[0] = log_pi + log_b[0]
    for t in range(1, len(log_b)):
        log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + log_a, axis=0) + log_b[t]
    return log_alpha, float(logsumexp(log_alpha[-1]))


def log_filtering_posteriors(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    """log p(s_t = k | z_1..t): (T, n_states); each row's exp sums to 1."""
    log_alpha, _ = forward_log(model, X)
    return log_alpha - logsumexp(log_alpha, axis=1, keepdims=True)


def filtering_posteriors(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    """p(s_t = k | z_1..t): (T, n_states); rows sum to 1."""
    return np.exp(log_filtering_posteriors(model, X))


def emission_posteriors(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    """p(s_t = k | z_t) under a uniform prior over states: (T, n_states); rows sum to 1."""
    log_b = log_emission_densities(model, X)
    return np.exp(log_b - logsumexp(log_b, axis=1, keepdims=True))


def posterior_gradients(
    model: GaussianHMM, X: np.ndarray, posteriors: np.ndarray | None = None
) -> np.ndarray:
    """d log p(s_t = k | z_1..t) / d z_t: (T, n_states, n_features).

    p(s_t = k | z_1..t) is proportional to p(s_t = k | z_1..t-1) N(z_t; mu_k, P_k) and the
    predictive term does not depend on z_t, so with g_k = P_k^-1 (mu_k - z_t) the gradient
    is g_k - sum_h p(s_t = h | z_1..t) g_h = sum_{h != k} p(s_t = h | z_1..t) (g_k - g_h).
    The second form is used: when the filter is nearly certain of k, the first form is a
    difference of two nearly equal numbers, while the second keeps full relative precision,
    so features can still be ranked. ``posteriors`` (T, n_states) may be passed to reuse a
    forward pass, or to use another prior (``emission_posteriors``).
    """
    X = _check_sequence(model, X)
    if posteriors is None:
        posteriors = filtering_posteriors(model, X)
    diff = model.means_[None, :, :] - X[:, None, :]  # (T, K, F): mu_k - z_t
    pulls = np.einsum("kfg,tkg->tkf", precisions(model), diff)  # g_k = P_k^-1 (mu_k - z_t)
    pairwise = pulls[:, :, None, :] - pulls[:, None, :, :]  # (T, K, K, F): g_k - g_h
    return np.einsum("th,tkhf->tkf", posteriors, pairwise)


def feature_importance(
    model: GaussianHMM, X: np.ndarray, posteriors: np.ndarray | None = None
) -> np.ndarray:
    """|d log p(s_t = k | z_1..t) / d z_t| element-wise: (T, n_states, n_features)."""
    return np.abs(posterior_gradients(model, X, posteriors))


def log_odds_gradients(model: GaussianHMM, X: np.ndarray, path: np.ndarray) -> np.ndarray:
    """d logit p(s_t = k_t | z_1..t) / d z_t for the state k_t = path[t]: (T, n_features).

    logit p = log p - log(1 - p). Its gradient is sum_{h != k} q_h (g_k - g_h) with
    q_h = p(s_t = h | z_1..t) / (1 - p(s_t = k | z_1..t)), the filter's weights of the
    states other than k: the ``posterior_gradients`` vector divided by 1 - p(s_t = k), so
    it ranks features exactly as the derivative of log p does at every checkpoint, but
    does not vanish when the filter is certain of k (a saturated posterior, where the
    derivative of log p is below floating-point noise). q is computed in log space. Where
    the filter gives every other state probability exactly 0 (a one-hot start, or zero
    transition probabilities), the posterior does not depend on z_t at all; q then comes
    from the emission posterior under a uniform prior (``emission_posteriors``): the states
    whose densities are closest to z_t. Rows are zero for a one-state model.
    """
    X = _check_sequence(model, X)
    path = np.asarray(path, dtype=int)
    n_states = model.n_components
    if n_states == 1:
        return np.zeros_like(X)
    rows = np.arange(len(X))
    others = log_filtering_posteriors(model, X)
    others[rows, path] = -np.inf
    unreachable = np.isneginf(others).all(axis=1)
    if unreachable.any():
        fallback = log_emission_densities(model, X[unreachable])
        fallback[np.arange(len(fallback)), path[unreachable]] = -np.inf
        others[unreachable] = fallback
    q = np.exp(others - logsumexp(others, axis=1, keepdims=True))  # (T, K), q[t, k_t] = 0
    diff = model.means_[None, :, :] - X[:, None, :]
    pulls = np.einsum("kfg,tkg->tkf", precisions(model), diff)  # g_h: (T, K, F)
    own = pulls[rows, path]  # g_k: (T, F)
    return own - np.einsum("th,thf->tf", q, pulls)
