"""Which tensors of a checkpoint the metrics read: its family's rule, the generic rule, or
name patterns (``source: checkpoints``; METHOD.md section 2).

``model: auto`` (the default) takes config.json's ``model_type``: a family with its own rule
(``bert``, ``gpt2``, ``gpt_neox``: ``trainmap.metrics.families``), else the generic rule on
the architecture transformers builds from config.json on the meta device
(``trainmap.checkpoints.architecture``). ``matrices:`` / ``biases:`` name tensors by glob
pattern as the Recorder takes them (``trainmap.metrics.generic.match_names``): for bare
weight files (no config.json) or to override the rule. Only names and shapes are read here
(file headers), never the weights.
"""

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from trainmap.checkpoints.architecture import checkpoint_entries, meta_model
from trainmap.checkpoints.read import CheckpointError, model_config, unreadable, weight_files
from trainmap.metrics.families import RULES, family_entries
from trainmap.metrics.generic import (
    Entry,
    default_biases,
    match_names,
    named_entries,
    selected_names,
)
from trainmap.tasks.hyperparameters import HYPERPARAMETERS

SHOWN = 12  # tensor names listed in an error message
BIAS_FREE_NOTE = (
    "no bias among the tensors the metrics read (a bias-free model): mean_b, median_b and "
    "var_b are NaN at every checkpoint, which is not divergence; the default features leave "
    "them out"
)


@dataclass(frozen=True)
class TensorSelection:
    """family: the rule applied (``bert``, ``gpt2``, ``gpt_neox``, ``generic``, ``names``, or
    a task's name); entries: the tensors read and how (None for a task family: its model
    reads the whole state dict); model_type, architecture: what config.json named; shapes:
    the checkpoint's name -> shape."""

    family: str
    entries: tuple[Entry, ...] | None
    model_type: str | None = None
    architecture: str | None = None
    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict, compare=False)

    @property
    def bias_free(self) -> bool:
        return self.entries is not None and not any(e.kind == "bias" for e in self.entries)

    def record(self) -> dict[str, Any]:
        """What weights.json holds: the rule and the tensor names each group read."""
        names = selected_names(self.entries, self.shapes) if self.entries is not None else {}
        out = {"family": self.family, "model_type": self.model_type,
               "architecture": self.architecture, **names, "bias_free": self.bias_free}  # fmt: skip
        if self.bias_free:
            out["note"] = BIAS_FREE_NOTE
        return out


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """name -> shape of every tensor of a checkpoint, from the file headers (safetensors)
    or a memory-mapped load (``.bin``: nothing is read until a tensor is used)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in weight_files(path):
        try:
            if file.suffix == ".safetensors":
                with safe_open(file, framework="pt") as f:
                    shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
                continue
            mmap = zipfile.is_zipfile(file)
            tensors = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as error:  # safetensors and the unpickler raise many types
            raise unreadable(file, error) from error
        if not isinstance(tensors, Mapping):
            raise CheckpointError(f"{file}: not a name -> tensor mapping (a state_dict)")
        shapes.update({k: tuple(t.shape) for k, t in tensors.items()})
    return shapes


def _listing(shapes: Mapping[str, Sequence[int]]) -> str:
    items = [f"{name} {tuple(shape)}" for name, shape in list(shapes.items())[:SHOWN]]
    more = len(shapes) - len(items)
    return ", ".join(items) + (f", ... ({more} more)" if more else "")


def _by_patterns(shapes, patterns, what: str, where: str) -> list[str]:
    try:
        return match_names(shapes, patterns, what)
    except ValueError as error:
        if what == "biases" and not any(n.endswith("bias") for n in shapes):
            reason = "it holds no bias at all (a bias-free model: drop biases:)"
        else:
            reason = f"it holds {_listing(shapes)}"
        raise CheckpointError(f"{where}: {error}; {reason}") from None


def _rule_entries(path: Path, family: str, config: dict, shapes) -> TensorSelection:
    """The family's own rule or, for ``generic`` (and ``auto`` of any other model_type), the
    generic rule on the architecture config.json describes."""
    model_type = config.get("model_type")
    if family == "auto":
        family = model_type if model_type in RULES else "generic"
    if family in RULES:
        try:
            entries = family_entries(family, shapes, config)
        except ValueError as error:
            raise CheckpointError(f"{path}: weights do not fit family {family!r}: {error}; "
                                  f"it holds {_listing(shapes)}") from None  # fmt: skip
        return TensorSelection(family, tuple(entries), model_type, shapes=shapes)
    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"{path}: no config.json to build the architecture from; name the tensors the "
            f"metrics read with matrices: (and biases:) patterns. It holds {_listing(shapes)}"
        )
    model = meta_model(folder)
    entries = checkpoint_entries(model, shapes, str(path))
    return TensorSelection("generic", tuple(entries), model_type, type(model).__name__, shapes)


def select_tensors(
    path: Path,
    model: str | None = None,
    matrices: Sequence[str] | None = None,
    biases: Sequence[str] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> TensorSelection:
    """What the metrics read of the checkpoint at ``path`` (module doc).

    model: a family, ``generic``, a task's name, or None/``auto``; matrices, biases: glob
    patterns over the checkpoint's tensor names (biases default to the family's, or with
    matrices to the ``.bias`` of each chosen ``.weight``; ``[]``: none). shapes: the
    checkpoint's name -> shape, if read already. Every problem is a CheckpointError that
    names the path and what it holds.
    """
    family = model or "auto"
    if family in HYPERPARAMETERS:
        return TensorSelection(family, None)
    shapes = tensor_shapes(path) if shapes is None else shapes
    config = model_config(path)
    if matrices is not None:
        matrix_names = _by_patterns(shapes, matrices, "matrices", str(path))
        entries = tuple(named_entries(shapes, matrix_names))
        selection = TensorSelection("names", entries, config.get("model_type"), shapes=shapes)
        bias_names = default_biases(shapes, matrix_names)
    else:
        selection = _rule_entries(path, family, config, shapes)
        bias_names = None
    if not any(e.kind != "bias" for e in selection.entries):  # all-NaN matrix metrics
        raise CheckpointError(f"{path}: rule {selection.family!r} finds no matrix; name them "
                              f"with matrices: patterns. It holds {_listing(shapes)}")  # fmt: skip
    if biases is not None:
        bias_names = _by_patterns(shapes, biases, "biases", str(path))
    if bias_names is None:
        return selection
    kept = [e for e in selection.entries if e.kind != "bias"]
    return replace(selection, entries=(*kept, *(Entry(name, "bias") for name in bias_names)))
