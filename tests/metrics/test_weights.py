"""Weight metrics (METHOD.md section 2) against a direct NumPy computation and hand values."""

import math

import numpy as np
import pytest
import torch
from oracle import numpy_metrics

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.weights import WeightGroups, compute_metrics
from trainmap.tasks.mlp import MLP
from trainmap.tasks.modular_addition.model import OneLayerTransformer

MAX32 = float(np.finfo(np.float32).max)


def to_torch(arrays: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.as_tensor(a, dtype=torch.float32) for a in arrays]


def as_numpy(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    return [t.detach().numpy() for t in tensors]


def assert_metrics_match(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == METRIC_COLUMNS
    for key in METRIC_COLUMNS:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12, nan_ok=True), key


def with_known_singular_values(
    rng: np.random.Generator, m: int, n: int, s: list[float]
) -> np.ndarray:
    """An (m, n) matrix U diag(s) V^T with orthonormal random U, V."""
    u, _ = np.linalg.qr(rng.standard_normal((m, m)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return u[:, : len(s)] @ np.diag(s) @ v[:, : len(s)].T


def test_random_matrices_match_numpy():
    rng = np.random.default_rng(0)
    shapes = [(5, 3), (3, 7), (4, 4), (4, 4), (7, 3), (6, 2)]  # non-square, shared shapes
    mats = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    biases = [rng.standard_normal(5).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    groups = WeightGroups(to_torch(mats), weights=to_torch(mats), biases=to_torch(biases))
    assert_metrics_match(compute_metrics(groups), numpy_metrics(mats, weights=mats, biases=biases))


def test_rank_deficient_floor_hand_values():
    # Singular values (3, 1, 5e-6, 0): the floor zeroes 5e-6, so mean 4/4 = 1 and population
    # variance (9 + 1) / 4 - 1 = 1.5; without the floor the mean would be 1 + 1.25e-6.
    w = with_known_singular_values(np.random.default_rng(1), 6, 4, [3.0, 1.0, 5e-6])
    got = compute_metrics(WeightGroups([torch.from_numpy(w)]))
    assert got["mean_lambda"] == pytest.approx(1.0, rel=1e-10)
    assert got["variance_lambda"] == pytest.approx(1.5, rel=1e-10)
    assert got["spectral"] == pytest.approx(3.0, rel=1e-12)
    assert got["computational_sparsity"] == pytest.approx(np.trace(w) / 3.0, rel=1e-9)
    assert_metrics_match(got, numpy_metrics([w]))


def test_one_row_layer_skipped_in_variance_only():
    rng = np.random.default_rng(2)
    row, mat = rng.standard_normal((1, 9)), rng.standard_normal((4, 3))
    got = compute_metrics(WeightGroups(to_torch([row, mat])))
    lam = np.linalg.svd(mat.astype(np.float32).astype(np.float64), compute_uv=False)
    assert got["variance_lambda"] == pytest.approx(np.var(lam), rel=1e-9)  # mat alone
    row64 = row.astype(np.float32).astype(np.float64)
    want_mean = (np.linalg.norm(row64) + lam.mean()) / 2  # both count for mean_lambda
    assert got["mean_lambda"] == pytest.approx(want_mean, rel=1e-9)
    assert_metrics_match(got, numpy_metrics([row.astype(np.float32), mat.astype(np.float32)]))


def test_only_single_singular_values_give_nan_variance():
    got = compute_metrics(WeightGroups([torch.ones(1, 4), torch.ones(3, 1)]))
    assert math.isnan(got["variance_lambda"])
    assert got["mean_lambda"] == pytest.approx((2.0 + math.sqrt(3.0)) / 2)


def small_transformer() -> OneLayerTransformer:
    model = OneLayerTransformer(
        vocab=7, n_classes=5, ctx=3, d_model=8, n_heads=2, d_head=4, d_mlp=16, layer_norm=False
    )
    model.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():  # reset zeroes biases; give the bias statistics something to see
        model.W_in.bias.normal_(generator=torch.Generator().manual_seed(4))
        model.W_out.bias.normal_(generator=torch.Generator().manual_seed(5))
    return model


def test_transformer_groups_are_split_per_head():
    model = small_transformer()
    groups = model.weight_groups()
    assert len(groups.matrices) == 3 * 2 + 3
    assert [tuple(m.shape) for m in groups.matrices] == [(4, 8)] * 6 + [(8, 8), (16, 8), (8, 16)]
    torch.testing.assert_close(groups.matrices[1], model.attn.W_Q.weight[4:8])
    torch.testing.assert_close(groups.matrices[2], model.attn.W_K.weight[:4])
    assert [tuple(b.shape) for b in groups.biases] == [(16,), (8,)]


def test_transformer_matches_numpy():
    groups = small_transformer().weight_groups()
    want = numpy_metrics(
        as_numpy(groups.matrices), weights=as_numpy(groups.weights), biases=as_numpy(groups.biases)
    )
    assert_metrics_match(compute_metrics(groups), want)


def test_default_size_transformer_matches_numpy():
    model = OneLayerTransformer(
        vocab=114, n_classes=113, ctx=3, d_model=128, n_heads=4, d_head=32, d_mlp=512,
        layer_norm=False,
    )  # fmt: skip
    model.reset_parameters(torch.Generator().manual_seed(0))
    groups = model.weight_groups()
    want = numpy_metrics(
        as_numpy(groups.matrices), weights=as_numpy(groups.weights), biases=as_numpy(groups.biases)
    )
    assert_metrics_match(compute_metrics(groups), want)


def test_mlp_matches_numpy():
    model = MLP([40, 128, 1])
    model.reset_parameters(torch.Generator().manual_seed(6))
    with torch.no_grad():
        for layer in model.linears():
            layer.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(7))
    groups = model.weight_groups()
    assert [tuple(m.shape) for m in groups.matrices] == [(128, 40), (1, 128)]
    want = numpy_metrics(
        as_numpy(groups.matrices), weights=as_numpy(groups.weights), biases=as_numpy(groups.biases)
    )
    got = compute_metrics(groups)
    assert_metrics_match(got, want)
    # The (1, 128) output layer has one singular value: variance_lambda is the hidden layer's.
    hidden = groups.matrices[0].detach().double().numpy()
    assert got["variance_lambda"] == pytest.approx(
        np.var(np.linalg.svd(hidden, compute_uv=False)), rel=1e-9
    )


def test_conv_kernels_per_slice_then_one_entry_each():
    rng = np.random.default_rng(8)
    kernels = [
        rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        rng.standard_normal((2, 4, 3, 3)).astype(np.float32),
    ]
    fc = rng.standard_normal((10, 2)).astype(np.float32)
    groups = WeightGroups(
        [torch.from_numpy(fc)],
        kernels=to_torch(kernels),
        weights=to_torch([*kernels, fc]),
        biases=to_torch([rng.standard_normal(10)]),
    )
    got = compute_metrics(groups)
    assert_metrics_match(got, numpy_metrics([fc], kernels, [*kernels, fc], [groups.biases[0]]))
    # trace and spectral come from the Linear layer alone.
    fc64 = fc.astype(np.float64)
    assert got["trace"] == pytest.approx(np.trace(fc64), rel=1e-9)
    assert got["spectral"] == pytest.approx(np.linalg.norm(fc64, 2), rel=1e-9)


def test_kernel_hand_values():
    # Two 1x2 slices: [3, 4] (l1 7, l2 5) and [0, 2] (l1 2, l2 2): slice means 4.5 and 3.5,
    # code_sparsity mean (7/5 + 1) / 2 = 1.2; averaged with the identity (l1 2, l2 sqrt 2).
    kernel = torch.tensor([[[[3.0, 4.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2)
    got = compute_metrics(WeightGroups([torch.eye(2)], kernels=[kernel]))
    assert got["l1"] == pytest.approx((4.5 + 2.0) / 2)
    assert got["l2"] == pytest.approx((3.5 + math.sqrt(2)) / 2)
    assert got["code_sparsity"] == pytest.approx((1.2 + math.sqrt(2)) / 2)
    assert got["trace"] == pytest.approx(2.0)
    assert got["computational_sparsity"] == pytest.approx(2.0)


def test_empty_biases_give_nan():
    mats = to_torch([np.arange(6.0).reshape(2, 3)])
    got = compute_metrics(WeightGroups(mats, weights=mats))
    assert all(math.isnan(got[k]) for k in ("mean_b", "median_b", "var_b"))
    assert got["mean_w"] == pytest.approx(2.5)
    assert got["median_w"] == pytest.approx(2.5)
    assert got["var_w"] == pytest.approx(35 / 12)  # population variance of 0..5


@pytest.mark.parametrize(
    ("values", "median"),
    [
        ([10.0, 1.0, 3.0, 2.0], 2.5),  # even: mean of the two middle values, not the lower
        ([2.0, 5.0, 1.0, 2.0], 2.0),  # even with the middle pair tied
        ([1.0, 0.0, 1.0, 0.0], 0.5),
        ([2.0, 2.0, 2.0, 7.0], 2.0),
        ([3.0, 1.0, 2.0], 2.0),  # odd
        ([-4.0], -4.0),
        ([-MAX32, 2.0, -MAX32, 1.0], (-MAX32 + 1.0) / 2),  # extreme values stay exact
        ([MAX32, -1.0, MAX32, 0.0], MAX32 / 2),
        ([-0.0, 0.0, 3.0, -5.0], 0.0),
    ],
)
def test_median_hand_values(values, median):
    got = compute_metrics(WeightGroups([torch.eye(2)], weights=[torch.tensor(values)]))
    assert got["median_w"] == median
    assert got["median_w"] == np.median(np.array(values, dtype=np.float32).astype(np.float64))


def test_median_matches_numpy_on_even_counts_with_ties():
    rng = np.random.default_rng(9)
    for n in (2, 10, 1000, 4096):
        x = np.round(rng.standard_normal(n), 1).astype(np.float32)  # many ties
        parts = [torch.from_numpy(x[: n // 3]), torch.from_numpy(x[n // 3 :])]
        got = compute_metrics(WeightGroups([torch.eye(2)], biases=parts))
        assert got["median_b"] == pytest.approx(float(np.median(x.astype(np.float64))), rel=1e-12)


def test_non_finite_matrix_gives_nan_not_an_error():
    bad = torch.ones(3, 3)
    bad[1, 2] = math.nan
    got = compute_metrics(WeightGroups([bad, torch.eye(3)], weights=[bad]))
    for key in ("l1", "l2", "spectral", "mean_lambda", "variance_lambda", "mean_w", "median_w"):
        assert math.isnan(got[key]), key
    # The NaN sits off the diagonal: both traces are 3, so the batch was not poisoned.
    assert got["trace"] == 3.0


def test_gradients_and_dtypes_do_not_matter():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((5, 4)).astype(np.float32)
    leaf = torch.tensor(w, requires_grad=True)
    got32 = compute_metrics(WeightGroups([leaf], weights=[leaf], biases=[leaf[0]]))
    got64 = compute_metrics(
        WeightGroups([leaf.detach().double()], weights=[leaf.double()], biases=[leaf[0].double()])
    )
    assert got32 == got64  # float32 -> float64 is exact, and both paths compute in float64
    assert all(isinstance(v, float) for v in got32.values())
    assert torch.is_grad_enabled()
