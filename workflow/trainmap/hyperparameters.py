"""Hyperparameters of every registered task: the config keys each accepts, typed, defaulted.

Kept free of torch so that validating a config (every Snakemake start, every cluster job)
stays fast; the task factories that need torch live in ``trainmap.tasks``.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainmap.errors import ConfigError


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


@dataclass(frozen=True)
class SparseParityParams(TrainingParams):
    """sparse_parity: the product of the first k of n_bits random +/-1 bits."""

    n_bits: int = 40
    k: int = 3
    hidden: int = 128
    n_train: int = 1000
    n_eval: int = 100
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 300
    eval_every: int = 10


@dataclass(frozen=True)
class ModularAdditionParams(TrainingParams):
    """modular_addition: (a + b) mod p with a one-layer transformer."""

    p: int = 113
    train_fraction: float = 0.3
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    layer_norm: bool = False
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 2048
    epochs: int = 10000
    eval_every: int = 10


# Task name -> its hyperparameters; trainmap.tasks.TASKS holds the factories.
HYPERPARAMETERS: dict[str, type[TrainingParams]] = {
    "modular_addition": ModularAdditionParams,
    "sparse_parity": SparseParityParams,
}


def task_params(name: str, where: str = "task") -> type[TrainingParams]:
    """The hyperparameter class of task ``name``; unknown names raise ConfigError."""
    if name not in HYPERPARAMETERS:
        raise ConfigError(
            f"{where}: unknown task {name!r}; registered tasks: "
            + ", ".join(sorted(HYPERPARAMETERS))
        )
    return HYPERPARAMETERS[name]


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
    for key in ("lr", "batch_size", "epochs", "eval_every"):
        value = getattr(p, key)
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
