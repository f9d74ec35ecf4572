"""The forward step of a Gaussian HMM in NumPy alone (METHOD.md section 5 notation).

``trainmap.hmm.filtering`` does the same over a whole run with SciPy and hmmlearn; this
module is what a training process imports (``trainmap.record`` may not pull SciPy), and
it goes one checkpoint at a time. tests/live/test_gaussian.py checks it against
``filtering_posteriors``.
"""

import math
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
    (K, F, F) for ``covariance: full`` or (K, F) for ``diag``. ``scale``: (mean, sd), each
    (F,): observations then come in the features' own units and are z-scored as
    (x - mean) / sd (z = 0 where sd is 0, a constant feature), folded into the whitening
    matrices. The Cholesky factors are inverted once here, so a step costs one
    (K F, F) matrix-vector product.
    """

    def __init__(self, model: dict[str, Any], scale: tuple[np.ndarray, np.ndarray] | None = None):
        self.means = np.asarray(model["means"], dtype=np.float64)
        n_states, n_features = self.means.shape
        covars = np.asarray(model["covars"], dtype=np.float64)
        if model["covariance"] == "diag":
            covars = np.stack([np.diag(c) for c in covars])
        if covars.shape != (n_states, n_features, n_features):
            raise ValueError(f"covars of shape {covars.shape} for {n_states} states")
        chol = np.linalg.cholesky(covars)  # raises LinAlgError for a covariance not PD
        whiten = np.linalg.inv(chol)  # L_k^-1: |L_k^-1 (z - mu_k)|^2 is the Mahalanobis
        # stacked: L_k^-1 z - L_k^-1 mu_k for every k is one (K F, F) matrix-vector product;
        # with z = (x - m) / s: L_k^-1 z = (L_k^-1 diag(1/s)) x - L_k^-1 diag(1/s) m
        centres = np.einsum("kfg,kg->kf", whiten, self.means)
        if scale is not None:
            mean, sd = (np.asarray(v, dtype=np.float64) for v in scale)
            inverse = np.divide(1.0, sd, out=np.zeros(n_features), where=sd != 0)
            whiten = whiten * inverse[None, None, :]  # a constant feature's columns: 0
            centres += np.einsum("kfg,g->kf", whiten, mean)
        # times sqrt(1/2): the sum of squares is then the exponent's -1/2 |.|^2 itself
        half = np.sqrt(0.5)
        self._whiten = half * whiten.reshape(n_states * n_features, n_features)
        self._centres = half * centres.reshape(n_states * n_features)
        diagonals = np.diagonal(chol, axis1=1, axis2=2)
        self.log_norm = -0.5 * n_features * LOG_2PI - np.log(diagonals).sum(axis=1)
        self.start = np.asarray(model["startprob"], dtype=np.float64)
        self.trans = np.asarray(model["transmat"], dtype=np.float64)
        self.n_states, self.n_features = n_states, n_features

    def log_emission(self, z: np.ndarray) -> np.ndarray:
        """log N(z; mu_k, P_k) for every state: (K,). ``z``: (F,) z-scores (values in the
        features' units with ``scale``)."""
        white = self._whiten @ z
        white -= self._centres
        white = white.reshape(self.n_states, self.n_features)
        # einsum: a point far from every state overflows to inf quietly (density 0)
        return self.log_norm - np.einsum("kf,kf->k", white, white)

    def step(self, z: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """P(s_t = k | z_1..t): (K,), from ``previous`` = P(s_t-1 | z_1..t-1) (None at
        the first checkpoint: the start probabilities).

        The scaled forward step (hmmlearn's ``implementation="scaling"``): probabilities
        times densities relative to the largest, then normalised. It runs at every
        Recorder.log, and is a few NumPy calls where log space needs K logsumexps
        (bench/bench_live.py). Where it underflows (every state with prior mass is far
        less likely than one without) the step is redone in log space.
        """
        log_b = self.log_emission(z)
        prior = self.start if previous is None else previous @ self.trans
        top = log_b.max()
        if not math.isfinite(top):  # density 0 (or NaN) for every state: the prior alone
            return prior / prior.sum()
        joint = prior * np.exp(log_b - top)  # underflow is ignored by default
        total = joint.sum()
        if total > 1e-250:
            joint /= total
            return joint
        return self._log_step(log_b, prior)

    def _log_step(self, log_b: np.ndarray, prior: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a state out of reach: log 0 = -inf
            log_prior = np.log(prior)
        joint = log_prior + log_b
        total = logsumexp(joint)
        if not np.isfinite(total):
            # every state has density 0 (underflow far from all means): no information
            # in this checkpoint beyond the prior, rather than NaN from -inf - -inf
            return prior / prior.sum()
        return np.exp(joint - total)

    def predict(self, previous: np.ndarray | None) -> np.ndarray:
        """P(s_t | z_1..t-1): the transitions alone (a checkpoint without observation)."""
        prior = self.start if previous is None else previous @ self.trans
        return prior / prior.sum()

    def filter(self, Z: np.ndarray) -> np.ndarray:
        """P(s_t | z_1..t) for a whole run: (T, K); ``Z``: (T, F)."""
        out, previous = [], None
        for z in np.asarray(Z, dtype=np.float64):
            previous = self.step(z, previous)
            out.append(previous)
        return np.array(out).reshape(len(out), self.n_states)
