"""gram_eigenvalues (trainmap.metrics.lapack) against numpy.linalg.eigvalsh."""

import numpy as np
import pytest

from trainmap.metrics.lapack import gram_eigenvalues


def gram(m: int, p: int, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal((m, p)) * scale
    return w.T @ w


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (40, 7), (7, 40), (300, 200), (64, 64)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_equals_numpy_eigvalsh(shape, order):
    g = np.asarray(gram(*shape), order=order)
    want = np.linalg.eigvalsh(g)
    got = gram_eigenvalues(g.copy(order=order))
    assert got.shape == want.shape
    assert np.all(np.diff(got) >= 0)  # ascending
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())


def test_overwrites_its_argument_and_needs_no_copy():
    g = gram(50, 20)
    before = g.copy()
    gram_eigenvalues(g)
    assert not np.array_equal(g, before)


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_tiny_and_huge_matrices_need_no_scaling(scale):
    """Far outside dsyevd's unscaled range (1e-146 to 1e146 for the largest entry)."""
    unit = gram(30, 10, seed=1)
    got = gram_eigenvalues(unit * scale)
    np.testing.assert_allclose(got, np.linalg.eigvalsh(unit) * scale, rtol=1e-12)


def test_rank_deficient_and_zero():
    w = np.zeros((6, 4))
    w[:, 0] = 1.0
    np.testing.assert_allclose(gram_eigenvalues(w.T @ w), [0, 0, 0, 6], atol=1e-14)
    np.testing.assert_array_equal(gram_eigenvalues(np.zeros((3, 3))), np.zeros(3))
    assert gram_eigenvalues(np.zeros((0, 0))).shape == (0,)


@pytest.mark.parametrize(
    "bad",
    [np.eye(3, dtype=np.float32), np.eye(4)[:, :3], np.eye(6)[::2, ::2]],
    ids=["float32", "not square", "not contiguous"],
)
def test_refuses_what_lapack_cannot_read(bad):
    with pytest.raises(ValueError, match="contiguous square float64"):
        gram_eigenvalues(bad)


def test_threads_calling_at_once_get_their_own_values():
    """What `threads: N` does: each call has its own arrays and workspace (only the
    workspace size is cached), so calls made at the same time, without the GIL, give the
    values of one call at a time."""
    from concurrent.futures import ThreadPoolExecutor

    grams = [gram(200 + 10 * i, 150, seed=i) for i in range(8)]
    want = [np.linalg.eigvalsh(g) for g in grams]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(gram_eigenvalues, [g.copy() for _ in range(3) for g in grams]))
    for i, values in enumerate(got):
        expect = want[i % len(grams)]
        np.testing.assert_allclose(values, expect, rtol=0, atol=1e-13 * np.abs(expect).max())
