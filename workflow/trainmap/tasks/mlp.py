"""The ReLU MLP of sparse_parity and mnist_mlp, with its stacked (seed-batched) forward.

The model re-initialises its parameters from an explicit ``torch.Generator``
(``reset_parameters``) and names the tensors the weight metrics read (``weight_groups``),
following METHOD.md section 2.
"""

import torch
from torch import nn

from trainmap.metrics.weights import WeightGroups
from trainmap.seedops import SeedKernels, Stacked, weight_and_bias


class MLP(nn.Module):
    """ReLU multilayer perceptron, widths ``[in, hidden..., out]``, Xavier-uniform init."""

    # Stacked seeds beat one after another on a CPU only for small MLPs, whose per-seed
    # matmuls are too small to run at speed (BENCHMARKS.md, 1 thread, vectorised vs
    # loop): sparse parity's 40-128-1 (5.4k parameters) 6.2x; MNIST MLPs 784-16-10
    # (12.7k) 1.08x, 784-64-10 (51k) 0.83x, 784-800-10 (636k) 0.49x.
    CPU_STACK_MAX_PARAMETERS = 20_000

    @property
    def stack_pays_on(self) -> tuple[str, ...]:
        """Devices where training seeds stacked was measured to beat one after another."""
        small = sum(p.numel() for p in self.parameters()) <= self.CPU_STACK_MAX_PARAMETERS
        return ("cpu", "cuda") if small else ("cuda",)

    def __init__(self, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(n_in, n_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def stacked_forward(self, params: Stacked, x: torch.Tensor, k: SeedKernels):
        """``forward`` for S seeds at once: x (S, batch, ...) -> (S, batch, out).

        params: the state_dict names -> (S, ...) tensors. Works for any ``MLP`` (widths,
        an ``nn.Flatten`` in front); other layer types are refused by name.
        """
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear):
                x = k.linear(x, *weight_and_bias(params, f"layers.{i}"))
            elif isinstance(layer, nn.ReLU):  # in place when no graph needs x: no new buffer
                x = torch.relu(x) if torch.is_grad_enabled() else torch.relu_(x)
            elif isinstance(layer, nn.Flatten):  # per-seed dims shift by the seed dim
                x = x.flatten(
                    layer.start_dim + 1 if layer.start_dim >= 0 else layer.start_dim,
                    layer.end_dim + 1 if layer.end_dim >= 0 else layer.end_dim,
                )
            else:
                raise TypeError(f"MLP.stacked_forward: no stacked form of {type(layer).__name__}")
        return x

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        for layer in self.linears():
            nn.init.xavier_uniform_(layer.weight, generator=gen)
            layer.bias.zero_()

    def weight_groups(self) -> WeightGroups:
        """Every Linear weight gets every matrix metric; biases: all Linear biases."""
        weights = [layer.weight for layer in self.linears()]
        return WeightGroups(
            matrices=weights,
            weights=weights,
            biases=[layer.bias for layer in self.linears()],
        )
