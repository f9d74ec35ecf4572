"""Hyperparameters of every registered task: the config keys each accepts, typed, defaulted.

Kept free of torch so that validating a config (every Snakemake start, every cluster job)
stays fast; the task factories that need torch live in ``trainmap.tasks``.
"""

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trainmap import data_files
from trainmap.errors import ConfigError, ConfigWarning


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

    RANGES: ClassVar[dict[str, Range]] = {
        "n_bits": AT_LEAST_ONE,
        "k": AT_LEAST_ONE,
        "hidden": AT_LEAST_ONE,
        "n_train": AT_LEAST_ONE,
        "n_eval": AT_LEAST_ONE,
    }

    def relations(self) -> list[tuple[str, str]]:
        if self.k > self.n_bits:
            return [("k", f"{self.k} exceeds n_bits ({self.n_bits}); allowed: 1 .. n_bits")]
        return []


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

    RANGES: ClassVar[dict[str, Range]] = {
        "p": Range(2),
        "train_fraction": Range(0, 1, low_open=True, high_open=True),
        "d_model": AT_LEAST_ONE,
        "n_heads": AT_LEAST_ONE,
        "d_head": AT_LEAST_ONE,
        "d_mlp": AT_LEAST_ONE,
    }

    def relations(self) -> list[tuple[str, str]]:
        pairs = self.p * self.p
        n_train = round(self.train_fraction * pairs)
        if not 1 <= n_train < pairs:
            return [
                (
                    "train_fraction",
                    f"{self.train_fraction!r} of the {pairs} pairs leaves {n_train} to train "
                    f"and {pairs - n_train} to evaluate; both need at least 1",
                )
            ]
        return []


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


@dataclass(frozen=True)
class MnistMlpParams(ImageParams):
    """mnist_mlp: an MLP 784-hidden...-10 on flattened MNIST digits."""

    hidden: tuple[int, ...] = (800,)
    # > 0: only the 10k test images are read (the offline example): this many of them,
    # a fixed seeded draw, are the training split and the rest the test split.
    train_from_test: int = 0

    RANGES: ClassVar[dict[str, Range]] = {
        "hidden": AT_LEAST_ONE,
        "train_from_test": Range(0, data_files.MNIST_TEST_SIZE, high_open=True),
    }

    def dataset_files(self) -> dict[str, list[str]]:
        splits = ("t10k",) if self.train_from_test else ("train", "t10k")
        return data_files.mnist_files(splits)


@dataclass(frozen=True)
class Cifar100ResNet18Params(ImageParams):
    """cifar100_resnet18: torchvision's ResNet18 with a CIFAR stem on CIFAR-100."""

    batch_norm: bool = True
    residual: bool = True
    # > 0: that many torchvision FakeData images per split instead of CIFAR-100 (a smoke
    # test without the download; nothing is read from data_root).
    fake_images: int = 0

    RANGES: ClassVar[dict[str, Range]] = {"fake_images": NON_NEGATIVE}

    def dataset_files(self) -> dict[str, list[str]]:
        return {} if self.fake_images else data_files.CIFAR100_FILES


@dataclass(frozen=True)
class MaskedLMParams(TrainingParams):
    """masked_lm: a BERT encoder trained from scratch with masked-token prediction."""

    corpus: str = "data/corpus.txt"  # a local text file (.txt), else a hub dataset name
    eval_fraction: float = 0.1  # the corpus's last lines held out for evaluation
    tokenizer: str = ""  # a JSON file or hub name; "" = trained by rule train_tokenizer
    vocab_size: int = 8192
    max_length: int = 128
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    mask_prob: float = 0.15
    n_train: int = 0  # training sequences, the first n; 0 = all
    n_eval: int = 512  # held-out sequences scored per checkpoint; 0 = all
    n_train_eval: int = 512  # fixed seeded subset of the training sequences, likewise
    eval_batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 1
    eval_every: int = 50
    eval_unit: str = "step"

    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("vocab_size", "layers", "hidden", "heads", "intermediate"), AT_LEAST_ONE),
        "eval_batch_size": AT_LEAST_ONE,
        "max_length": Range(3),  # [CLS] text [SEP]
        **dict.fromkeys(("n_train", "n_eval", "n_train_eval"), NON_NEGATIVE),
        "eval_fraction": Range(0, 1, low_open=True, high_open=True),
        "mask_prob": Range(0, 1, low_open=True, high_open=True),
    }

    def relations(self) -> list[tuple[str, str]]:
        problems = []
        if self.hidden % self.heads:
            problems.append(("hidden", f"{self.hidden} is not a multiple of heads ({self.heads})"))
        if self.vocab_size <= len(data_files.SPECIAL_TOKENS):
            n = len(data_files.SPECIAL_TOKENS)
            problems.append(("vocab_size", f"{self.vocab_size} must exceed the {n} special tokens"))
        return problems

    def check(self, where: str) -> None:
        if data_files.is_local_corpus(self.corpus) and not Path(self.corpus).is_file():
            raise ConfigError(
                f"{where}.corpus: no text file {str(Path(self.corpus).resolve())!r} "
                "(a local corpus ends in .txt or exists; other values are hub dataset names)"
            )
        local = data_files.is_local_file(self.tokenizer, ".json")
        if self.tokenizer and local and not Path(self.tokenizer).is_file():
            raise ConfigError(
                f"{where}.tokenizer: no file {str(Path(self.tokenizer).resolve())!r} (a "
                "tokenizer file ends in .json or exists; other values are hub tokenizer names)"
            )


# Task name -> its hyperparameters; trainmap.tasks.TASKS holds the factories.
HYPERPARAMETERS: dict[str, type[TrainingParams]] = {
    "modular_addition": ModularAdditionParams,
    "sparse_parity": SparseParityParams,
    "mnist_mlp": MnistMlpParams,
    "cifar100_resnet18": Cifar100ResNet18Params,
    "masked_lm": MaskedLMParams,
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
