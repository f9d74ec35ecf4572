"""Opt-in sketched spectra (``metrics: {spectra: sketched}``): estimates, never the default.

For matrices too big for exact spectra (say beyond 4096 x 16384, where the Gram matrix's
eigenvalues cost O(p^3)), the three spectral metrics are estimated from products with W
only (O(m n) each), by Lanczos iterations on the Gram matrix G = W^T W (or W W^T):

- spectral: the largest Ritz value of ``steps`` Lanczos steps from a random start (a lower
  bound that converges fast when the top of the spectrum is separated);
- mean_lambda: tr(G^(1/2)) / p by stochastic Lanczos quadrature (Ubaru, Chen & Saad, SIMAX
  2017): ``probes`` Rademacher vectors, ``steps`` Lanczos steps each;
- variance_lambda: sum sigma^2 / p - mean^2 with sum sigma^2 = ||W||_F^2 (exact).

METHOD.md's 1e-5 floor is not applied (values below it keep their own tiny value; an
estimate cannot tell which they are). The error against the exact values is measured on
Pythia shapes in BENCHMARKS.md (``bench/bench_fast_metrics.py sketch``). Estimates are
seeded (``seed``), so a rerun gives the same values.
"""

import numpy as np


def _lanczos(apply, start: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of ``steps`` Lanczos steps of the symmetric operator ``apply``, with
    full reorthogonalisation (steps is small). start: (p,) nonzero."""
    p = start.shape[0]
    steps = min(steps, p)
    basis = np.zeros((steps, p))
    alpha, beta = np.zeros(steps), np.zeros(max(steps - 1, 0))
    q = start / np.linalg.norm(start)
    for j in range(steps):
        basis[j] = q
        v = apply(q)
        alpha[j] = q @ v
        v -= basis[: j + 1].T @ (basis[: j + 1] @ v)  # twice is enough (Kahan)
        v -= basis[: j + 1].T @ (basis[: j + 1] @ v)
        if j == steps - 1:
            break
        beta[j] = np.linalg.norm(v)
        if beta[j] <= 1e-14 * max(abs(alpha[j]), 1e-300):  # an invariant subspace: exact
            return alpha[: j + 1], beta[:j]
        q = v / beta[j]
    return alpha, beta


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values and the first components of their vectors (tridiagonal eigenproblem)."""
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    values, vectors = np.linalg.eigh(t)
    return values, vectors[0]


def sketched_spectrum(
    wd: np.ndarray, seed: int = 0, probes: int = 16, steps: int = 40
) -> tuple[float, float, float]:
    """(spectral, mean_lambda, variance_lambda) estimated for a float64 (m, n) matrix."""
    m, n = wd.shape
    tall = m >= n
    p = min(m, n)

    def gram(v: np.ndarray) -> np.ndarray:  # G v without forming G
        return wd.T @ (wd @ v) if tall else wd @ (wd.T @ v)

    gen = np.random.default_rng(seed)
    values, _ = _ritz(*_lanczos(gram, gen.standard_normal(p), steps))
    spectral = float(np.sqrt(max(values[-1], 0.0)))
    trace_sqrt = 0.0
    for _ in range(probes):
        z = gen.choice([-1.0, 1.0], size=p)
        values, first = _ritz(*_lanczos(gram, z, steps))
        trace_sqrt += p * float(first**2 @ np.sqrt(np.clip(values, 0.0, None)))
    mean = trace_sqrt / probes / p
    flat = wd.reshape(-1)
    variance = float(flat @ flat) / p - mean * mean
    return spectral, mean, variance
