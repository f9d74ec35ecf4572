"""What a task is: hyperparameters, data, model, loss and accuracy.

A task is a small bundle of factories; ``trainmap.train`` runs one loop for all tasks.
Hyperparameters are a frozen dataclass per task (``trainmap.hyperparameters``), so the
config keys a task accepts, their types and their defaults are declared in one place.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainmap.hyperparameters import TrainingParams


@dataclass
class Splits:
    """A task's data for one seed: inputs (n, ...) and targets (n, ...) per split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor

    def to(self, device: torch.device) -> "Splits":
        return Splits(*(t.to(device) for t in dataclasses.astuple(self)))


@dataclass(frozen=True)
class Task:
    """A registered task: ``make_data(params, gen)``, ``make_model(params)``, loss, accuracy.

    loss(outputs, targets) -> scalar mean loss; accuracy(outputs, targets) -> fraction
    correct as a 0-d tensor. The model must provide ``reset_parameters(gen)`` and
    ``weight_groups()`` (see ``trainmap.models``).

    stacked_loss (optional): the same loss for S seeds' stacked outputs (S, B, ...) and
    targets (S, B, ...) -> (S,), whose gradient must equal ``loss``'s seed by seed
    (tests/test_vectorized.py checks every task); without it a vectorised group uses
    ``torch.func.vmap(loss)``, exact too but slower per step.
    """

    name: str
    params: type[TrainingParams]
    make_data: Callable[[Any, torch.Generator], Splits]
    make_model: Callable[[Any], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    stacked_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
