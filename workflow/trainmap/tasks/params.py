"""Hyperparameters shared by every task: the training loop's keys, ranges, choices, and
how a setting's keys are parsed and checked (``parse_params``).

Kept free of torch so that validating a config (every Snakemake start, every cluster job)
stays fast; each task's own keys are in ``trainmap.tasks.<task>.params``, the registry of
them in ``trainmap.tasks.hyperparameters``.
"""

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from trainmap.errors import ConfigError, ConfigWarning
from trainmap.tasks import data_files


@dataclass(frozen=True)
class Range:
    """Allowed values of a number (or of each item of a tuple); None = no bound."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def allows(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # [0, 1)


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters of the training loop, shared by every task (defaults per task).

    Class attributes declare what config validation checks, for this class and its
    subclasses (merged along the class hierarchy): ``RANGES`` (key -> allowed values),
    ``CHOICES`` (key -> allowed strings), ``ONLY_WITH`` (key -> (key, value) it only has
    an effect with; setting it otherwise warns), and ``relations()`` for checks that
    involve several keys.
    """

    RANGES: ClassVar[dict[str, Range]] = {
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "betas": FRACTION,
        "momentum": FRACTION,
        "batch_size": AT_LEAST_ONE,
        "epochs": AT_LEAST_ONE,
        "eval_every": AT_LEAST_ONE,
    }
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "optimizer": ("adamw", "sgd"),
        "eval_unit": ("epoch", "step"),
        "device": ("auto", "cpu", "cuda"),
    }
    ONLY_WITH: ClassVar[dict[str, tuple[str, str]]] = {
        "betas": ("optimizer", "adamw"),
        "momentum": ("optimizer", "sgd"),
    }

    def relations(self) -> list[tuple[str, str]]:
        """Checks across keys: (key, problem) pairs; none for the shared keys."""
        return []

    def train_examples(self) -> int | None:
        """Training examples per epoch as the keys give them (config validation predicts
        a run's checkpoints from it, trainmap.hmm.split); None where only the data tells
        (the masked LM's corpus). Each task states its own: the registry of tasks is
        the one place that knows them."""
        return None

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

    def check(self, where: str) -> None:
        """Checks of what lies outside the config (data files present); raise ConfigError.
        Ranges and relations between keys go in RANGES and relations()."""


@dataclass(frozen=True)
class ImageParams(TrainingParams):
    """Keys shared by the image tasks: where the data is and what a checkpoint scores."""

    data_root: str = "data"  # relative paths resolve against the working directory
    download: bool = False
    n_eval: int = 2048  # fixed seeded subset of the test split scored per checkpoint; 0 = all
    n_train_eval: int = 2048  # fixed seeded subset of the training split, likewise
    eval_batch_size: int = 512
    weight_decay: float = 1.0
    eval_every: int = 20
    eval_unit: str = "step"

    RANGES: ClassVar[dict[str, Range]] = {
        "n_eval": NON_NEGATIVE,
        "n_train_eval": NON_NEGATIVE,
        "eval_batch_size": AT_LEAST_ONE,
    }

    def check(self, where: str) -> None:
        if not self.download:
            data_files.require(self.dataset_files(), self.data_root, f"{where}.data_root")

    def dataset_files(self) -> dict[str, list[str]]:
        """What ``data_root`` must hold: name -> accepted relative paths (data_files)."""
        raise NotImplementedError


def _check_type(value: object, annotation: object) -> bool:
    """Whether a YAML value fits a dataclass field annotation (int accepted for float)."""
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis:  # tuple[int, ...]: a non-empty list
            return (
                isinstance(value, list | tuple)
                and len(value) > 0
                and all(_check_type(v, items[0]) for v in value)
            )
        return (
            isinstance(value, list | tuple)
            and len(value) == len(items)
            and all(_check_type(v, a) for v, a in zip(value, items, strict=True))
        )
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
    _check_training(params, where, values)
    params.check(where)
    return params


def _merged(cls: type, name: str) -> dict:
    """A class attribute dict merged along the class hierarchy (subclasses win)."""
    merged: dict = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get(name, {}))
    return merged


def _check_training(p: TrainingParams, where: str, given: Mapping[str, Any] = ()) -> None:
    """Ranges, choices and relations of ``p``; warn about given keys that do nothing.

    given: the keys the config set (a default that does nothing is no user's doing).
    """
    for key, allowed in _merged(type(p), "RANGES").items():
        value = getattr(p, key)
        items = value if isinstance(value, tuple) else (value,)
        if not all(allowed.allows(item) for item in items):
            raise ConfigError(f"{where}.{key}: {_show(value)} is out of range; allowed: {allowed}")
    for key, allowed in _merged(type(p), "CHOICES").items():
        value = getattr(p, key)
        if value not in allowed:
            raise ConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(allowed)}")
    for key, problem in p.relations():
        raise ConfigError(f"{where}.{key}: {problem}")
    for key, (other, needed) in _merged(type(p), "ONLY_WITH").items():
        if key in given and getattr(p, other) != needed:
            warnings.warn(
                f"{where}.{key}: has no effect with {other} {getattr(p, other)!r} "
                f"(only with {other} {needed!r})",
                ConfigWarning,
                stacklevel=2,
            )


def _show(value: object) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)
