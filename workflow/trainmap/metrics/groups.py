"""The tensors a model exposes to the weight metrics, and the definitions every path shares.

``WeightGroups`` is what a model family's rule (``trainmap.metrics.families``, the generic
rule of ``trainmap.metrics.generic``, a task model's ``weight_groups()``) hands to the one
metrics engine (``trainmap.metrics.fast``, behind ``trainmap.metrics.weights``).
"""

from dataclasses import dataclass, field

import torch

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

    def tensors(self) -> list[torch.Tensor]:
        return [*self.matrices, *self.kernels, *self.weights, *self.biases]


def kernel_metrics(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
