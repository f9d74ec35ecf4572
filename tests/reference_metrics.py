"""The weight metrics' former per-path implementations, kept as test oracles only.

Until issue 32 trained runs and the Recorder computed the 14 metrics this way (``compute_metrics``:
one batched float64 ``torch.linalg.svdvals`` per matrix shape, the pooled statistics on a
concatenated float64 copy; ``reference_metrics`` here), and vectorised groups batched the
same over seeds. Every path now uses the one engine, ``trainmap.metrics.weights``
(``trainmap.metrics.fast``); this stays as an independent float64 computation to test it
against (``trainmap.metrics.fast.TOLERANCES``).
"""

import math

import torch

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.groups import DTYPE, SINGULAR_VALUE_FLOOR, WeightGroups
from trainmap.metrics.groups import kernel_metrics as _kernel_metrics


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
def reference_metrics(groups: WeightGroups) -> dict[str, float]:
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
