"""The 14 weight metrics of METHOD.md section 2, one row per checkpoint.

Everything is computed in float64 on the device the tensors live on (CPU or CUDA, one code
path), with one ``torch.linalg.svdvals`` per matrix that gives both the spectral norm and the
singular-value statistics, batched over matrices of equal shape. Host syncs: the 14 results
come back in one transfer; on CUDA, svdvals also syncs once per call (documented by torch),
so once per distinct matrix shape (4 for the transformer) instead of once per matrix.
"""

import math
from dataclasses import dataclass, field

import torch

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.seedops import random_like

# Singular values below this are set to 0 before mean_lambda / variance_lambda (METHOD.md).
SINGULAR_VALUE_FLOOR = 1e-5
# float64 throughout: float32 weights convert exactly, and the statistics then match a
# NumPy float64 computation to ~1e-12 rather than ~1e-6.
DTYPE = torch.float64


@dataclass
class WeightGroups:
    """The tensors a model exposes to the metrics, already split as METHOD.md says.

    matrices: 2-D tensors that get every matrix metric (a transformer's W_Q/W_K/W_V
        arrive already split per head).
    kernels: conv kernels (out, in, kh, kw); only l1, l2 and code_sparsity, computed per
        (kh, kw) slice and averaged with the matrices.
    weights: tensors pooled for mean_w, median_w, var_w.
    biases: tensors pooled for mean_b, median_b, var_b.
    """

    matrices: list[torch.Tensor]
    kernels: list[torch.Tensor] = field(default_factory=list)
    weights: list[torch.Tensor] = field(default_factory=list)
    biases: list[torch.Tensor] = field(default_factory=list)


def _stack_by_shape(matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stack equal-shape matrices into one float64 batch each, returned tall: (b, m, n), m >= n.

    One batched SVD per shape instead of one per matrix (the 12 transformer heads share
    (d_head, d_model)). A wide stack is returned as its transpose view: no metric changes
    (l1, l2, the main diagonal and the singular values of W and W^T agree), LAPACK's SVD of
    a tall (512, 128) matrix is ~2x faster than of a wide (128, 512) one, and the view is
    already the column-major layout LAPACK copies into. The stacks are fresh copies, so
    later in-place edits are safe.
    """
    groups: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for w in matrices:
        if w.ndim != 2:
            raise ValueError(f"matrices must be 2-D, got shape {tuple(w.shape)}")
        groups.setdefault(tuple(w.shape), []).append(w.detach())
    stacks = [torch.stack(group).to(DTYPE) for group in groups.values()]
    return [x.mT if x.shape[-2] < x.shape[-1] else x for x in stacks]


def _matrix_metrics(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8 matrix metrics of a stack of equal-shape tall matrices.

    batch: (b, m, n) float64 with m >= n, owned by the caller (it is modified in place).
    Returns values (8, b) in METRIC_COLUMNS[:8] order and counted (8, b): 1 where a value
    enters the model-level average, else 0 with the value set to 0 (variance_lambda of a
    matrix with a single singular value). A matrix with a NaN/inf entry gets NaN singular
    values instead of crashing LAPACK, so a diverged run shows up as NaN features (and is
    reported downstream, not dropped here).
    """
    l1 = batch.abs().sum(dim=(-2, -1))
    l2 = torch.linalg.vector_norm(batch, dim=(-2, -1))
    trace = batch.diagonal(dim1=-2, dim2=-1).sum(-1)  # main diagonal, square or not
    finite = torch.isfinite(l1)  # finite iff every entry is (short of float64 overflow)
    s = torch.linalg.svdvals(batch.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0))  # (b, n)
    s = torch.where(finite[:, None], s, math.nan)
    spectral = s[:, 0]  # svdvals sorts descending; the raw value, not floored
    lam = torch.where(s < SINGULAR_VALUE_FLOOR, 0.0, s)
    var_lambda, mean_lambda = torch.var_mean(lam, dim=-1, correction=0)
    values = torch.stack(
        [l1, l2, l1 / l2, trace, spectral, trace / spectral, mean_lambda, var_lambda]
    )
    counted = torch.ones_like(values)
    if s.shape[-1] == 1:  # one singular value has no variance: skip it for variance_lambda
        values[7], counted[7] = 0.0, 0.0
    return values, counted


def _kernel_metrics(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """l1, l2 and code_sparsity of a conv kernel, as values and counted of shape (8, 1).

    kernel: (out, in, kh, kw). A *slice* is one kh x kw matrix kernel[o, i]; each metric is
    computed per slice and averaged over the out * in slices (code_sparsity is the mean of
    the per-slice ratios), as the authors' ``get_tensor_metrics`` does. The kernel then counts
    as one matrix in the model-level averages of those 3 metrics (so a ResNet's millions of
    slices do not swamp its final Linear layer) and is not counted in the other 5.
    """
    if kernel.ndim != 4:
        raise ValueError(f"kernels must be (out, in, kh, kw), got shape {tuple(kernel.shape)}")
    x = kernel.detach().to(DTYPE)
    l1 = x.abs().sum(dim=(-2, -1))  # (out, in)
    l2 = torch.linalg.vector_norm(x, dim=(-2, -1))
    values = x.new_zeros(8, 1)
    values[:3, 0] = torch.stack([l1, l2, l1 / l2]).mean(dim=(-2, -1))
    counted = x.new_zeros(8, 1)
    counted[:3] = 1.0
    return values, counted


def _median(x: torch.Tensor) -> torch.Tensor:
    """NumPy's median of a 1-D float tensor: the mean of the two middle values for even counts.

    torch.median returns the lower middle value x_(k), k = (n - 1) // 2 (0-based). The upper
    one x_(n // 2) equals it when more than n // 2 values are <= it (ties, and always for odd
    n), else it is the smallest value above it: O(n) passes instead of a second selection,
    and no host sync. Selection runs in x's own dtype (exact); the mean is taken in float64.
    """
    lower = torch.median(x)
    # Smallest value above `lower`: lift every value <= lower to lower, then push exactly
    # those past all others by adding the dtype's max twice (v + 0 + 0 = v is exact for the
    # rest; twice so that even lower = -max lands at >= max). On one CPU thread this is ~1.5x
    # faster than torch.where(x > lower, x, inf).min(), whose kernel is not vectorised.
    lifted = x.clamp(min=lower)
    at_or_below = lifted == lower
    big = torch.finfo(x.dtype).max
    smallest_above = lifted.add(at_or_below, alpha=big).add_(at_or_below, alpha=big).min()
    upper = torch.where(torch.count_nonzero(at_or_below) > x.numel() // 2, lower, smallest_above)
    return torch.stack([lower, upper]).to(DTYPE).mean()


def _pooled(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(3,): mean, median, population variance of all entries of ``tensors``; NaN if none."""
    if sum(t.numel() for t in tensors) == 0:
        return torch.full((3,), math.nan, dtype=DTYPE, device=device)
    x = torch.cat([t.detach().reshape(-1) for t in tensors])  # selection stays in x's dtype
    centred = x.to(DTYPE, copy=True)  # a copy even for float64 input: x stays intact
    mean = centred.mean()
    # Two passes, not E[x^2] - mean^2, so a constant bias vector gives exactly 0; in place,
    # because allocating another 8-byte copy of 2e5 weights costs more than the pass itself.
    centred.sub_(mean)
    return torch.stack([mean, _median(x), torch.dot(centred, centred) / x.numel()])


@torch.no_grad()
def compute_metrics(groups: WeightGroups) -> dict[str, float]:
    """The 14 weight metrics (keys and order of METRIC_COLUMNS) of one checkpoint.

    groups: the model's tensors (see WeightGroups), all on one device, any float dtype.
    Per-matrix metrics are averaged over matrices (and kernels, for l1, l2, code_sparsity)
    with equal weight; variance_lambda skips matrices with a single singular value
    (min(m, n) == 1). Variances are population variances (ddof=0). A metric with nothing to
    average over (no matrices, no biases, ...) is NaN, as is 0/0 (an all-zero matrix or
    kernel slice gives code_sparsity NaN; a zero spectral norm, computational_sparsity NaN).
    float64 needs a CPU or CUDA device (MPS has no float64).
    """
    tensors = [*groups.matrices, *groups.kernels, *groups.weights, *groups.biases]
    if not tensors:
        raise ValueError("WeightGroups holds no tensors")
    device = tensors[0].device

    parts = [_matrix_metrics(batch) for batch in _stack_by_shape(groups.matrices)]
    parts += [_kernel_metrics(kernel) for kernel in groups.kernels]
    if parts:
        values, counted = (torch.cat(p, dim=1) for p in zip(*parts, strict=True))
        means = values.sum(dim=1) / counted.sum(dim=1)  # uncounted values are 0; 0/0 -> NaN
    else:
        means = torch.full((8,), math.nan, dtype=DTYPE, device=device)
    row = torch.cat([means, _pooled(groups.weights, device), _pooled(groups.biases, device)])
    # One transfer of the 14 numbers to the host.
    return dict(zip(METRIC_COLUMNS, row.tolist(), strict=True))


def _median_rows(x: torch.Tensor) -> torch.Tensor:
    """``_median`` of every row of x (S, N), as one batch of the same exact selections."""
    lower = torch.median(x, dim=-1).values
    lifted = torch.maximum(x, lower[:, None])
    at_or_below = lifted == lower[:, None]
    big = torch.finfo(x.dtype).max
    smallest_above = lifted.add(at_or_below, alpha=big).add_(at_or_below, alpha=big).amin(-1)
    count = torch.count_nonzero(at_or_below, dim=-1)
    upper = torch.where(count > x.shape[-1] // 2, lower, smallest_above)
    return torch.stack([lower, upper]).to(DTYPE).mean(0)


def _pooled_rows(per_seed: list[list[torch.Tensor]], dot) -> torch.Tensor:
    """(S, 3): ``_pooled`` of each seed's tensors in one batch; ``dot(a, b)`` row-wise."""
    x = torch.stack([torch.cat([t.detach().reshape(-1) for t in ts]) for ts in per_seed])
    centred = x.to(DTYPE, copy=True)
    mean = centred.mean(-1, keepdim=True)
    centred.sub_(mean)
    return torch.stack([mean[:, 0], _median_rows(x), dot(centred, centred) / x.shape[-1]], 1)


# Row-wise dot products that may round as torch.dot does (checked before use).
ROW_DOTS = {
    "vecdot": torch.linalg.vecdot,
    "bmm": lambda a, b: torch.bmm(a[:, None], b[:, :, None]).view(-1),
    "sum of products": lambda a, b: (a * b).sum(-1),
    # torch.dot row by row: BLAS's own dot, so exact; the rest of the statistics batched.
    # Each row copied first: BLAS sums an unaligned row (odd lengths) in another order.
    "dot per row": lambda a, b: torch.stack(
        [torch.dot(x.clone(), y.clone()) for x, y in zip(a, b, strict=True)]
    ),
}


def _pooled_stacked(per_seed: list[list[torch.Tensor]], device, kernels) -> torch.Tensor:
    """(S, 3) of ``_pooled(per_seed[s])``: batched where ``kernels`` (a
    ``trainmap.seedops.SeedKernels``) found a form bit-identical to it, else per seed."""
    if kernels is None or sum(t.numel() for t in per_seed[0]) == 0:
        return torch.stack([_pooled(ts, device) for ts in per_seed])
    key = (
        "pooled statistics",
        tuple(tuple(t.shape) for t in per_seed[0]),
        len(per_seed),
        device.type,
    )
    if key not in kernels.choices:
        # Decide on random values (real ones can be degenerate: zero biases at init), 64
        # rows of them, spread over magnitudes: 3 seeds' 3 numbers can agree by chance
        # when two summation orders differ.
        gen = torch.Generator().manual_seed(0)
        probe = [
            [random_like(t, gen) * random_like(t, gen).mul(3).exp() for t in per_seed[0]]
            for _ in range(64)
        ]
        kernels.pick(key, *_pooled_forms(probe, device))
    return kernels.pick(key, *_pooled_forms(per_seed, device))


def _pooled_forms(per_seed: list[list[torch.Tensor]], device):
    """The per-seed reference and the batched candidates of ``_pooled_stacked``."""

    def reference() -> torch.Tensor:
        return torch.stack([_pooled(ts, device) for ts in per_seed])

    candidates = [
        (name, lambda dot=dot: _pooled_rows(per_seed, dot)) for name, dot in ROW_DOTS.items()
    ]
    return reference, candidates


@torch.no_grad()
def compute_metrics_stacked(groups: list[WeightGroups], kernels=None) -> list[dict[str, float]]:
    """``compute_metrics`` of S models of one architecture (a vectorised group) at once.

    groups: one WeightGroups per seed, with the same shapes in the same order. One
    ``svdvals`` per matrix shape over every seed's matrices of that shape; each matrix
    still gets its own LAPACK call and each seed its own sums in its own order, so every
    value equals ``compute_metrics(groups[s])``. The pooled statistics (a median and a dot
    product each) are batched over seeds where ``kernels`` (a ``SeedKernels``) checked a
    batched form to give each seed's values bit for bit, else computed per seed. Returns
    one dict per seed, as ``compute_metrics``.
    """
    first = groups[0]
    if not [*first.matrices, *first.kernels, *first.weights, *first.biases]:
        raise ValueError("WeightGroups holds no tensors")
    device = [*first.matrices, *first.kernels, *first.weights, *first.biases][0].device
    n_seeds = len(groups)
    by_shape: dict[tuple[int, ...], list[int]] = {}  # shape -> indices, in first-seen order
    for i, w in enumerate(first.matrices):
        by_shape.setdefault(tuple(w.shape), []).append(i)
    parts = []
    for indices in by_shape.values():
        # (S * count, m, n), seed-major: seed s's matrices in its own order.
        stack = torch.stack([g.matrices[i].detach() for g in groups for i in indices]).to(DTYPE)
        values, counted = _matrix_metrics(stack.mT if stack.shape[-2] < stack.shape[-1] else stack)
        parts.append((values.view(8, n_seeds, -1), counted.view(8, n_seeds, -1)))
    for k in range(len(first.kernels)):
        kernel_parts = [_kernel_metrics(g.kernels[k]) for g in groups]  # (8, 1) each
        parts.append(tuple(torch.stack(p, dim=1) for p in zip(*kernel_parts, strict=True)))
    if parts:
        values, counted = (torch.cat(p, dim=-1) for p in zip(*parts, strict=True))
        means = values.sum(dim=-1) / counted.sum(dim=-1)  # (8, S)
    else:
        means = torch.full((8, n_seeds), math.nan, dtype=DTYPE, device=device)
    pooled = [
        _pooled_stacked([getattr(g, name) for g in groups], device, kernels)
        for name in ("weights", "biases")
    ]
    rows = torch.cat([means.T, *pooled], dim=1)  # (S, 14), one transfer
    return [dict(zip(METRIC_COLUMNS, row, strict=True)) for row in rows.tolist()]
