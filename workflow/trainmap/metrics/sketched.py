"""Opt-in sketched spectra (``metrics: {spectra: sketched}``): estimates, never the default.

For matrices too big for exact spectra (say beyond 4096 x 16384, where the Gram matrix's
eigenvalues cost O(p^3)), the three spectral metrics are estimated from products with W
only, by Lanczos iterations on the Gram matrix G = W^T W (or W W^T), p = min(m, n):

- ``probes`` Lanczos recursions from Rademacher vectors run together as one block: each
  step applies G to a (p, probes) block (two matrix-matrix products, BLAS3), while every
  column keeps its own recursion (its own alpha, beta, basis, reorthogonalisation and
  breakdown), so the columns are exactly ``probes`` independent Lanczos processes;
- mean_lambda: tr(G^(1/2)) / p by stochastic Lanczos quadrature (Ubaru, Chen & Saad, SIMAX
  2017) over those probes, with tr(G) = ||W||_F^2 (exact) as a control variate: each probe
  estimates tr(G^(1/2) - c G), c fitted on the quadrature nodes, which removes most of the
  probe-to-probe spread of the plain estimate (c is fitted on the same probes, so the
  estimate is no longer strictly unbiased: a small bias, traded for the spread);
- spectral: sqrt of the largest Rayleigh-Ritz value of G on the span of the probes' top
  ``TOP`` Ritz vectors each (the best part of their block Krylov space), with G applied
  afresh to an orthonormal basis of that span (one more block product). A Rayleigh-Ritz
  value, so a lower bound (up to rounding);
- variance_lambda: sum sigma^2 / p - mean^2 with sum sigma^2 = ||W||_F^2 (exact).

Cost per (m, n) matrix: about 4 m n probes (steps + TOP) flops in matrix-matrix products
(the exact path: about m n p for the Gram matrix plus O(p^3) for its eigenvalues), plus
O(steps^2 p probes) for the reorthogonalisation; memory 8 p probes steps bytes. The
defaults (16 probes, 16 steps) are cheaper than the exact path from p = 2048 on, and
about as cheap at p = 1024 (BENCHMARKS.md); the mean's error is mostly the probes'
spread, the spectral norm's falls fast with steps.

METHOD.md's 1e-5 floor is not applied (values below it keep their own tiny value; an
estimate cannot tell which they are). The error against the exact values is measured on
Pythia shapes in BENCHMARKS.md (``bench/bench_fast_metrics.py sketch``). Estimates are
seeded (``seed``), so a rerun gives the same values.
"""

import numpy as np

TOP = 4  # top Ritz vectors per probe spanning the spectral norm's Rayleigh-Ritz


def _block_lanczos(apply, start: np.ndarray, steps: int):
    """Independent Lanczos recursions of the symmetric operator ``apply``, one per row of
    ``start`` (k, p), run together so that ``apply`` takes a (k, p) block. Full
    reorthogonalisation of each row against its own basis (steps is small).

    Returns alpha (k, steps), beta (k, steps - 1), lengths (k,): row i's recursion is
    alpha[i, :lengths[i]], beta[i, :lengths[i] - 1] (shorter after an invariant subspace),
    and the bases (k, steps, p), zero past each length."""
    k, p = start.shape
    steps = min(steps, p)
    basis = np.zeros((k, steps, p))
    alpha, beta = np.zeros((k, steps)), np.zeros((k, max(steps - 1, 0)))
    lengths = np.full(k, steps)
    scale = 0.0  # largest |alpha| of any row so far (<= ||G||): the breakdown yardstick
    q = start / np.linalg.norm(start, axis=1, keepdims=True)
    for j in range(steps):
        basis[:, j] = q
        v = apply(q)
        alpha[:, j] = np.einsum("kp,kp->k", q, v)
        done = basis[:, : j + 1]
        for _ in range(2):  # twice is enough (Kahan); batched over the rows
            v -= (np.matmul(done, v[:, :, None]).transpose(0, 2, 1) @ done)[:, 0]
        if j == steps - 1:
            break
        scale = max(scale, float(np.abs(alpha[:, j]).max()))
        beta[:, j] = np.linalg.norm(v, axis=1)
        stop = (lengths == steps) & (beta[:, j] <= 1e-12 * scale)  # an invariant subspace
        lengths[stop] = j + 1
        alive = lengths > j + 1
        beta[~alive, j] = 0.0
        q = np.where(alive[:, None], v / np.where(alive, beta[:, j], 1.0)[:, None], 0.0)
    return alpha, beta, lengths, basis


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) and their vectors (tridiagonal eigenproblem)."""
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    return np.linalg.eigh(t)


def sketched_spectrum(
    wd: np.ndarray, seed: int = 0, probes: int = 16, steps: int = 16
) -> tuple[float, float, float]:
    """(spectral, mean_lambda, variance_lambda) estimated for a float64 (m, n) matrix."""
    m, n = wd.shape
    tall = m >= n
    p = min(m, n)

    def gram(x: np.ndarray) -> np.ndarray:  # the rows of x times G, without forming G
        return (x @ wd.T) @ wd if tall else (x @ wd) @ wd.T

    flat = wd.reshape(-1)
    total = float(flat @ flat)  # tr(G) = sum sigma^2
    gen = np.random.default_rng(seed)
    start = gen.choice([-1.0, 1.0], size=(probes, p))
    alpha, beta, lengths, basis = _block_lanczos(gram, start, steps)
    nodes, weights, tops = [], [], []
    for i, size in enumerate(lengths):
        values, vectors = _ritz(alpha[i, :size], beta[i, : size - 1])
        nodes.append(np.clip(values, 0.0, None))
        weights.append(vectors[0] ** 2)
        tops.append(vectors[:, -TOP:].T @ basis[i, :size])  # top Ritz vectors, rows
    # control variate: sqrt(x) - c x has a known trace minus tr(sqrt G); c = the slope of
    # sqrt on the probes' pooled quadrature measure (least squares), 0 if it is one point
    x, w = np.concatenate(nodes), np.concatenate(weights) / probes
    spread = w @ x**2 - (w @ x) ** 2
    c = (w @ (x * np.sqrt(x)) - (w @ x) * (w @ np.sqrt(x))) / spread if spread > 0 else 0.0
    trace_sqrt = p * float(w @ (np.sqrt(x) - c * x)) + c * total
    mean = trace_sqrt / p
    # spectral: Rayleigh-Ritz on the span of the top Ritz vectors, G applied afresh
    basis_top, _ = np.linalg.qr(np.concatenate(tops).T)
    projected = basis_top.T @ gram(basis_top.T).T
    spectral = float(np.sqrt(max(np.linalg.eigvalsh((projected + projected.T) / 2)[-1], 0.0)))
    variance = total / p - mean * mean
    return spectral, mean, variance
