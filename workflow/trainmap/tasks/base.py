"""What a task is: hyperparameters, data, model, loss and accuracy.

A task is a small bundle of factories; ``trainmap.training.loop`` runs one loop for all tasks.
Hyperparameters are a frozen dataclass per task (``trainmap.tasks.params``), so the
config keys a task accepts, their types and their defaults are declared in one place.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainmap.tasks.params import TrainingParams


@dataclass
class Splits:
    """A task's data for one seed: inputs (n, ...) and targets (n, ...) per split.

    probe_x, probe_y: the examples a checkpoint scores for train loss and accuracy (a fixed
    subset of the training split, so that a checkpoint of a large data set stays cheap);
    None scores the whole training split.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    probe_x: torch.Tensor | None = None
    probe_y: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Splits":
        return type(self)(*(None if t is None else t.to(device) for t in self._tensors()))

    def _tensors(self) -> list[torch.Tensor | None]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def train_probe(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets scored for the train loss and accuracy at a checkpoint."""
        if self.probe_x is None or self.probe_y is None:
            return self.train_x, self.train_y
        return self.probe_x, self.probe_y


@dataclass(frozen=True)
class Task:
    """A registered task: ``make_data(params, gen)``, ``make_model(params)``, loss, accuracy.

    loss(outputs, targets) -> scalar mean loss; accuracy(outputs, targets) -> fraction
    correct as a 0-d tensor. The model must provide ``reset_parameters(gen)`` and
    ``weight_groups()`` (see ``trainmap.tasks.modular_addition.model``).

    Optional:
    train_batch(params, x, y, gen) -> (x, y): turns a drawn training batch into what the
        model trains on (augmentation, masking), drawing only from ``gen`` (the run's
        batch generator); None trains on the batch as drawn.
    count(targets) -> number of scored items in a batch (0-d tensor or int), the weight of
        a batch's mean loss and accuracy when a split is scored in chunks; None: len(targets).
    stacked_loss(outputs, targets) -> (S,): the same loss for S seeds' stacked outputs
        (S, B, ...) and targets (S, B, ...), whose gradient must equal ``loss``'s seed by
        seed (tests/training/test_vectorized.py checks every task); None: a vectorised group uses
        ``torch.func.vmap(loss)``, exact too but slower per step.
    """

    name: str
    params: type[TrainingParams]
    make_data: Callable[[Any, torch.Generator], Splits]
    make_model: Callable[[Any], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train_batch: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
    count: Callable[[torch.Tensor], torch.Tensor] | None = None
    stacked_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


def argmax_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=-1) == y).float().mean()
