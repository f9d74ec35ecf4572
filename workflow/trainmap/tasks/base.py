"""What a task is: hyperparameters, data, model, loss and accuracy.

A task is a small bundle of factories; ``trainmap.train`` runs one loop for all tasks.
Hyperparameters are a frozen dataclass per task, so the config keys a task accepts, their
types and their defaults are declared in one place.
"""

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class ConfigError(ValueError):
    """A config value the workflow cannot run with; the message names key and value."""


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters of the training loop, shared by every task (defaults per task)."""

    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adamw only
    momentum: float = 0.0  # sgd only
    batch_size: int = 256
    epochs: int = 100
    eval_every: int = 1  # checkpoint interval, counted in eval_unit
    eval_unit: str = "epoch"  # epoch | step
    device: str = "auto"  # auto (cuda if available) | cpu | cuda


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
    """

    name: str
    params: type[TrainingParams]
    make_data: Callable[[Any, torch.Generator], Splits]
    make_model: Callable[[Any], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_type(value: object, annotation: object) -> bool:
    """Whether a YAML value fits a dataclass field annotation (int accepted for float)."""
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        return isinstance(value, list | tuple) and len(value) == len(items)
    if isinstance(annotation, types.UnionType):
        return any(_check_type(value, a) for a in typing.get_args(annotation))
    return isinstance(value, annotation)  # type: ignore[arg-type]


def parse_params(cls: type[TrainingParams], values: Mapping[str, Any], where: str):
    """Build ``cls`` from config ``values``; unknown keys and wrong types raise ConfigError.

    where: the config path of ``values`` for messages, e.g. ``settings.parity``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"{where}.{key}: unknown key for this task (value {value!r}); "
                f"known keys: {', '.join(sorted(fields))}"
            )
        if not _check_type(value, hints[key]):
            raise ConfigError(
                f"{where}.{key}: expected {getattr(hints[key], '__name__', hints[key])}, "
                f"got {value!r}"
            )
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    params = cls(**converted)
    _check_training(params, where)
    return params


def _check_training(p: TrainingParams, where: str) -> None:
    positive = {"lr": p.lr, "batch_size": p.batch_size, "epochs": p.epochs}
    positive["eval_every"] = p.eval_every
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}.{key}: must be positive, got {value!r}")
    choices = {
        "optimizer": (p.optimizer, ("adamw", "sgd")),
        "eval_unit": (p.eval_unit, ("epoch", "step")),
        "device": (p.device, ("auto", "cpu", "cuda")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(allowed)}")
    if p.weight_decay < 0:
        raise ConfigError(f"{where}.weight_decay: must be >= 0, got {p.weight_decay!r}")
