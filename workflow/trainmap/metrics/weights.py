"""The 14 weight metrics of METHOD.md section 2, one row per checkpoint: the one engine.

Every path computes them through ``trainmap.metrics.fast.metrics_of_layers`` (one
definition of each metric): trained runs (``compute_metrics``, per checkpoint), vectorised
groups (``compute_metrics_stacked``: each seed as the loop computes it, so the two stay
bit-identical), the Recorder (``compute_metrics`` of the model's weight groups) and
checkpoint series (``trainmap.checkpoints.stream``, layer by layer). The engine is exact
to ``trainmap.metrics.fast.TOLERANCES`` against a float64 SVD computation (the former
implementation, kept in tests/ as the oracle).

Where it runs: the matrices' spectra on the device the tensors live on (CPU: NumPy and
LAPACK; CUDA: torch, batched per matrix shape), the O(n) sums and the exact median on the
host.
"""

import torch

from trainmap.metrics.fast import metrics_of_layers
from trainmap.metrics.groups import DTYPE, SINGULAR_VALUE_FLOOR, WeightGroups

__all__ = [
    "DTYPE",
    "SINGULAR_VALUE_FLOOR",
    "WeightGroups",
    "compute_metrics",
    "compute_metrics_stacked",
]


def _device(tensors: list[torch.Tensor]) -> torch.device:
    """Where the spectra run: the tensors' CUDA device, else the CPU (float64 needs one of
    the two; MPS has no float64)."""
    device = tensors[0].device
    return device if device.type == "cuda" else torch.device("cpu")


@torch.no_grad()
def compute_metrics(
    groups: WeightGroups, threads: int = 1, spectra: str = "exact"
) -> dict[str, float]:
    """The 14 weight metrics (keys and order of METRIC_COLUMNS) of one model.

    groups: the model's tensors (see WeightGroups), any float dtype, on one device.
    Per-matrix metrics are averaged over matrices (and kernels, for l1, l2, code_sparsity)
    with equal weight; variance_lambda skips matrices with a single singular value
    (min(m, n) == 1). Variances are population variances (ddof=0). A metric with nothing to
    average over (no matrices, no biases: a bias-free model) is NaN, as is 0/0 (an all-zero
    matrix or kernel slice gives code_sparsity NaN; a zero spectral norm,
    computational_sparsity NaN). threads: matrices computed in parallel. spectra:
    ``exact``, or the opt-in ``sketched`` estimates (``trainmap.metrics.sketched``).
    """
    tensors = groups.tensors()
    if not tensors:
        raise ValueError("WeightGroups holds no tensors")
    return metrics_of_layers(lambda: [groups], _device(tensors), threads, spectra=spectra)


def compute_metrics_stacked(groups: list[WeightGroups]) -> list[dict[str, float]]:
    """``compute_metrics`` of S models of one architecture (a vectorised group), one dict
    per seed. Each seed runs through the engine alone, exactly as the loop's call: the
    values are bit-identical to one seed after another by construction."""
    return [compute_metrics(g) for g in groups]
