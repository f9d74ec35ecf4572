"""The forward step of a Gaussian HMM in NumPy alone (METHOD.md section 5 notation).

``trainmap.hmm.filtering`` does the same over a whole run with SciPy and hmmlearn; this
module is what a training process imports (``trainmap.record`` may not pull SciPy), and
it goes one checkpoint at a time. tests/live/test_gaussian.py checks it against
``filtering_posteriors``.
"""

from typing import Any

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def logsumexp(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """log sum exp along ``axis``; an all -inf slice gives -inf, never NaN."""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf slice
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return total if axis is None else np.squeeze(total, axis=axis)


class GaussianFilter:
    """P(s_t | z_1..t) of a Gaussian HMM given as ``model_to_json`` writes it.

    ``model``: ``startprob`` (K,), ``transmat`` (K, K), ``means`` (K, F), ``covars``
    (K, F, F) for ``covariance: full`` or (K, F) for ``diag``. The Cholesky factors are
    inverted once here, so a step costs K small matrix-vector products.
    """

    def __init__(self, model: dict[str, Any]):
        self.means = np.asarray(model["means"], dtype=np.float64)
        n_states, n_features = self.means.shape
        covars = np.asarray(model["covars"], dtype=np.float64)
        if model["covariance"] == "diag":
            covars = np.stack([np.diag(c) for c in covars])
        if covars.shape != (n_states, n_features, n_features):
            raise ValueError(f"covars of shape {covars.shape} for {n_states} states")
        chol = np.linalg.cholesky(covars)  # raises LinAlgError for a covariance not PD
        self.whiten = np.linalg.inv(chol)  # L_k^-1: |L_k^-1 (z - mu_k)|^2 is the Mahalanobis
        diagonals = np.diagonal(chol, axis1=1, axis2=2)
        self.log_norm = -0.5 * n_features * LOG_2PI - np.log(diagonals).sum(axis=1)
        with np.errstate(divide="ignore"):  # zero probabilities: -inf, as intended
            self.log_start = np.log(np.asarray(model["startprob"], dtype=np.float64))
            self.log_trans = np.log(np.asarray(model["transmat"], dtype=np.float64))
        self.n_states, self.n_features = n_states, n_features

    def log_emission(self, z: np.ndarray) -> np.ndarray:
        """log N(z; mu_k, P_k) for every state: (K,). ``z``: (F,) z-scores."""
        white = np.einsum("kfg,kg->kf", self.whiten, z[None, :] - self.means)
        return self.log_norm - 0.5 * np.einsum("kf,kf->k", white, white)

    def step(self, z: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """log P(s_t = k | z_1..t): (K,), from ``previous`` = log P(s_t-1 | z_1..t-1)
        (None at the first checkpoint: the start probabilities)."""
        if previous is None:
            prior = self.log_start
        else:
            prior = logsumexp(previous[:, None] + self.log_trans, axis=0)
        joint = prior + self.log_emission(np.asarray(z, dtype=np.float64))
        total = logsumexp(joint)
        if not np.isfinite(total):
            # every state has density 0 (underflow far from all means): no information
            # in this checkpoint beyond the prior, rather than NaN from -inf - -inf
            return prior - logsumexp(prior)
        return joint - total

    def filter(self, Z: np.ndarray) -> np.ndarray:
        """P(s_t | z_1..t) for a whole run: (T, K); ``Z``: (T, F)."""
        out, previous = [], None
        for z in np.asarray(Z, dtype=np.float64):
            previous = self.step(z, previous)
            out.append(previous)
        return np.exp(np.array(out).reshape(len(out), self.n_states))
