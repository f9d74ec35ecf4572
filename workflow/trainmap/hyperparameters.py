"""Hyperparameters of every registered task: the config keys each accepts, typed, defaulted.

Kept free of torch so that validating a config (every Snakemake start, every cluster job)
stays fast; the task factories that need torch live in ``trainmap.tasks``.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainmap import data_files
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

    def check(self, where: str) -> None:
        """Task-specific checks beyond types (data present, ...); raise ConfigError."""


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

    def check(self, where: str) -> None:
        for key in ("n_eval", "n_train_eval"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: must be >= 0, got {getattr(self, key)!r}")
        if self.eval_batch_size <= 0:
            raise ConfigError(f"{where}.eval_batch_size: must be positive")
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

    def check(self, where: str) -> None:
        if any(h <= 0 for h in self.hidden):
            raise ConfigError(f"{where}.hidden: widths must be positive, got {self.hidden!r}")
        if not 0 <= self.train_from_test < data_files.MNIST_TEST_SIZE:
            raise ConfigError(
                f"{where}.train_from_test: must be in [0, {data_files.MNIST_TEST_SIZE}), "
                f"got {self.train_from_test!r}"
            )
        super().check(where)

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

    def check(self, where: str) -> None:
        if self.fake_images < 0:
            raise ConfigError(f"{where}.fake_images: must be >= 0, got {self.fake_images!r}")
        super().check(where)

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

    def check(self, where: str) -> None:
        positive = ("vocab_size", "max_length", "layers", "hidden", "heads")
        for key in (*positive, "intermediate", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key}: must be positive, got {getattr(self, key)!r}")
        for key in ("n_train", "n_eval", "n_train_eval"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: must be >= 0, got {getattr(self, key)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"{where}.hidden: {self.hidden} is not a multiple of heads")
        if self.max_length < 3:
            raise ConfigError(f"{where}.max_length: must be >= 3 ([CLS] text [SEP])")
        if self.vocab_size <= len(data_files.SPECIAL_TOKENS):
            raise ConfigError(f"{where}.vocab_size: must exceed the special tokens")
        for key in ("eval_fraction", "mask_prob"):
            if not 0 < getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be in (0, 1), got {getattr(self, key)!r}")
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
    params.check(where)
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
