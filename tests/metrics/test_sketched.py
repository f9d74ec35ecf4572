"""The block Lanczos of trainmap.metrics.sketched against plain Lanczos and exact spectra."""

import numpy as np
import pytest

from trainmap.metrics.sketched import _block_lanczos, sketched_spectrum


def plain_lanczos(g: np.ndarray, start: np.ndarray, steps: int):
    """Textbook single-vector Lanczos with full reorthogonalisation: (alpha, beta)."""
    basis, alpha, beta = [start / np.linalg.norm(start)], [], []
    for j in range(steps):
        v = g @ basis[j]
        alpha.append(basis[j] @ v)
        q = np.array(basis)
        v -= q.T @ (q @ v)
        v -= q.T @ (q @ v)
        if j == steps - 1:
            break
        beta.append(np.linalg.norm(v))
        basis.append(v / beta[-1])
    return np.array(alpha), np.array(beta)


def exact(w: np.ndarray) -> tuple[float, float, float]:
    s = np.linalg.svd(w, compute_uv=False)
    return s[0], s.mean(), s.var()


def low_rank(m: int, n: int, rank: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    return gen.standard_normal((m, rank)) @ gen.standard_normal((rank, n))


def test_each_column_is_its_own_lanczos_recursion():
    gen = np.random.default_rng(1)
    w = gen.standard_normal((90, 60))
    g = w.T @ w
    start = gen.standard_normal((5, 60))
    alpha, beta, lengths, _ = _block_lanczos(lambda x: x @ g, start, 12)
    assert list(lengths) == [12] * 5
    for i in range(5):  # mixing the columns anywhere would break this
        a, b = plain_lanczos(g, start[i], 12)
        np.testing.assert_allclose(alpha[i], a, rtol=1e-10)
        np.testing.assert_allclose(beta[i], b, rtol=1e-10)


def test_a_column_that_breaks_down_leaves_the_others_alone():
    g = low_rank(40, 30, 3, seed=2).T @ low_rank(40, 30, 3, seed=2)
    _, vectors = np.linalg.eigh(g)
    gen = np.random.default_rng(3)
    start = np.stack([vectors[:, -1], gen.standard_normal(30), vectors[:, 0]])
    alpha, beta, lengths, basis = _block_lanczos(lambda x: x @ g, start, 10)
    assert lengths[0] == 1 and lengths[2] == 1  # eigenvectors: invariant at once
    assert lengths[1] <= 5  # rank 3, plus the null space component: at most 4 + 1
    a, b = plain_lanczos(g, start[1], lengths[1])
    np.testing.assert_allclose(alpha[1, : lengths[1]], a, rtol=1e-10)
    np.testing.assert_allclose(beta[1, : lengths[1] - 1], b, rtol=1e-10)
    assert not basis[0, 1:].any() and not alpha[0, 1:].any()


@pytest.mark.parametrize(
    "w",
    [
        np.random.default_rng(4).standard_normal((150, 150)),  # square
        np.random.default_rng(5).standard_normal((400, 100)),  # tall
        np.random.default_rng(6).standard_normal((100, 400)),  # wide
        low_rank(200, 150, 5, seed=7),  # invariant subspace within a few steps
        np.random.default_rng(8).standard_normal((60, 12)),  # p = 12 below steps
    ],
    ids=["square", "tall", "wide", "low-rank", "p<steps"],
)
def test_sketched_spectrum_is_near_the_exact_values(w):
    spectral, mean, variance = sketched_spectrum(w)
    true = exact(w)
    assert spectral <= true[0] * (1 + 1e-12)  # a Rayleigh-Ritz value: a lower bound
    assert spectral == pytest.approx(true[0], rel=1e-3)
    assert mean == pytest.approx(true[1], rel=2e-2)
    p = min(w.shape)
    assert variance == pytest.approx(np.sum(w**2) / p - mean**2, rel=1e-12)
    assert sketched_spectrum(w) == (spectral, mean, variance)  # seeded
    assert sketched_spectrum(w, seed=1)[1] != mean


def test_sketched_spectrum_of_zero_and_orthogonal_matrices():
    assert sketched_spectrum(np.zeros((30, 20))) == (0.0, 0.0, 0.0)
    q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((50, 20)))
    spectral, mean, variance = sketched_spectrum(q)  # G = I: every probe stops at once
    assert spectral == pytest.approx(1.0) and mean == pytest.approx(1.0)
    assert variance == pytest.approx(0.0, abs=1e-12)
