"""Sparse parity: label = product of the first k of n random +/-1 bits (METHOD.md s. 7)."""

import torch

from trainmap.tasks.base import Splits, Task
from trainmap.tasks.mlp import MLP
from trainmap.tasks.sparse_parity.params import SparseParityParams


def make_data(p: SparseParityParams, gen: torch.Generator) -> Splits:
    """Fresh train and eval bits per seed: x (n, n_bits) in {-1, +1}, y (n,) in {-1, +1}."""
    x = torch.randint(0, 2, (p.n_train + p.n_eval, p.n_bits), generator=gen).float() * 2 - 1
    y = x[:, : p.k].prod(dim=1)
    return Splits(x[: p.n_train], y[: p.n_train], x[p.n_train :], y[p.n_train :])


def make_model(p: SparseParityParams) -> MLP:
    return MLP([p.n_bits, p.hidden, 1])


def hinge_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1 - out.squeeze(-1) * y, min=0).mean()


def stacked_hinge_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """hinge_loss of S seeds at once: out (S, B, 1), y (S, B) -> (S,)."""
    return torch.clamp(1 - out.squeeze(-1) * y, min=0).mean(-1)


def sign_accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (torch.sign(out.squeeze(-1)) == y).float().mean()


SPARSE_PARITY = Task(
    name="sparse_parity",
    params=SparseParityParams,
    make_data=make_data,
    make_model=make_model,
    loss=hinge_loss,
    accuracy=sign_accuracy,
    stacked_loss=stacked_hinge_loss,
)
