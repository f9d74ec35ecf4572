"""The 14 weight metrics of METHOD.md section 2 (placeholder: being written)."""

from dataclasses import dataclass, field

import torch

METRIC_COLUMNS = [
    "l1",
    "l2",
    "code_sparsity",
    "trace",
    "spectral",
    "computational_sparsity",
    "mean_lambda",
    "variance_lambda",
    "mean_w",
    "median_w",
    "var_w",
    "mean_b",
    "median_b",
    "var_b",
]


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
