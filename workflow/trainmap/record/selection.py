"""Which of a model's weights the Recorder's metrics read (METHOD.md section 2).

A ``Selection`` is decided once, when the Recorder is made, so that a selection that
matches nothing fails before training rather than after it. It is re-applied at every
``log`` (cheap: name matching, no copies), because ``model.to(...)`` and
``load_state_dict`` may give the parameters new storage.

Families (``family="auto"`` picks the first that fits):
- ``task``: a model with its own ``weight_groups()`` (the built-in tasks' models); a
  registered task's name (``sparse_parity``, ...) asks for the same.
- ``bert``, ``gpt2``, ``gpt_neox``: transformers models by ``config.model_type``, with the
  rules of ``trainmap.metrics.families`` (the same as for checkpoint series).
- ``resnet``: a torchvision ResNet, by the generic rule below, which gives METHOD.md's
  ResNet rule: the final Linear layer is the only matrix, conv kernels give l1, l2 and
  code_sparsity per kernel slice, BatchNorm is excluded.
- ``generic``: ``trainmap.metrics.generic`` (the rule checkpoint series of any
  transformers architecture get too): every Linear (or layer that acts as one) a matrix,
  mixture-of-experts experts one matrix per expert and projection, conv kernels per slice;
  embeddings, normalisation layers and the language-model head (what
  ``get_output_embeddings()`` returns), tied or not, left out; biases of the layers read.
``matrices=`` / ``biases=`` take parameter names or glob patterns (``fnmatch``: ``*``,
``?``, ``[...]``) instead: see ``select_weights``.
"""

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from trainmap.checkpoints.series import TRANSFORMER_FAMILIES
from trainmap.errors import RecordError
from trainmap.metrics.families import family_entries
from trainmap.metrics.generic import (
    Entry,
    default_biases,
    generic_entries,
    groups_of,
    match_names,
    named_entries,
    selected_names,
)
from trainmap.metrics.groups import WeightGroups
from trainmap.tasks.hyperparameters import HYPERPARAMETERS

FAMILY_NAMES = ("auto", "task", *TRANSFORMER_FAMILIES, "resnet", "generic")
MAX_NAMES_SHOWN = 80  # parameter names listed in an error message


@dataclass(frozen=True)
class Selection:
    """family: the rule applied; groups: model -> its WeightGroups now; names: the
    parameter names each group reads (stored with the run so the rule can be checked)."""

    family: str
    groups: Callable[[nn.Module], WeightGroups]
    names: dict[str, list[str]]


def parameter_list(model: nn.Module) -> str:
    """The model's parameter names with shapes, for error messages."""
    items = [f"{name} {tuple(p.shape)}" for name, p in model.named_parameters()]
    if not items:
        return "(the model has no parameters)"
    shown = items[:MAX_NAMES_SHOWN]
    more = len(items) - len(shown)
    return ", ".join(shown) + (f", ... ({more} more)" if more else "")


def detect_family(model: nn.Module) -> str:
    """The family ``family="auto"`` applies to ``model``."""
    if callable(getattr(model, "weight_groups", None)):
        return "task"
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in TRANSFORMER_FAMILIES:
        return model_type
    # torchvision is imported already wherever a torchvision ResNet exists.
    models = sys.modules.get("torchvision.models")
    if models is not None and isinstance(model, models.ResNet):
        return "resnet"
    return "generic"


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> parameter, every alias of a shared parameter included."""
    return dict(model.named_parameters(remove_duplicate=False))


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def generic_groups(model: nn.Module) -> WeightGroups:
    """The generic rule of METHOD.md section 2 (``trainmap.metrics.generic``)."""
    return groups_of(generic_entries(model), _parameters(model))


def _family_entries(family: str, model: nn.Module) -> list[Entry]:
    """The entries of a rule decided from names, shapes and module types (not ``task``)."""
    if family in ("generic", "resnet"):
        return generic_entries(model)
    config = model.config.to_dict() if hasattr(model, "config") else {}
    return family_entries(family, _shapes(model), config)


def _match(model: nn.Module, patterns: Sequence[str], what: str) -> list[str]:
    """Parameter names matching any of ``patterns`` (``trainmap.metrics.generic.match_names``),
    as RecordError with the model's parameters listed."""
    try:
        return match_names(_shapes(model), patterns, what)
    except ValueError as error:
        message = str(error).replace("matches nothing", "matches no parameter of the model")
        raise RecordError(f"{message.replace(what, what + '=', 1)}. The model's parameters: "
                          + parameter_list(model)) from None  # fmt: skip


def _storage_names(model: nn.Module, tensors: list[torch.Tensor]) -> list[str]:
    """The names of the parameters whose storage ``tensors`` read (views included)."""
    by_storage = {}
    for name, p in model.named_parameters():
        by_storage.setdefault(p.untyped_storage().data_ptr(), name)
    names = [by_storage.get(t.untyped_storage().data_ptr(), "?") for t in tensors]
    return list(dict.fromkeys(names))


def _task_rule(bias_names: list[str] | None) -> Callable[[nn.Module], WeightGroups]:
    """A task model's own weight_groups(), its biases replaced where biases= names them."""

    def groups(model: nn.Module) -> WeightGroups:
        out = model.weight_groups()
        if bias_names is not None:
            params = _parameters(model)
            out.biases = [params[name] for name in bias_names]
        return out

    return groups


def _entries_rule(entries: list[Entry]) -> Callable[[nn.Module], WeightGroups]:
    return lambda model: groups_of(entries, _parameters(model))


def _chosen_entries(model, family, matrix_names, bias_names) -> list[Entry] | None:
    """The entries of the weights named (or of the family's rule), biases replaced where
    named; None for a task model (its own weight_groups())."""
    if matrix_names is not None:
        entries = named_entries(_shapes(model), matrix_names)
    elif family != "task":
        entries = _family_entries(family, model)
    else:
        return None
    if bias_names is not None:
        entries = [e for e in entries if e.kind != "bias"]
        entries += [Entry(name, "bias") for name in bias_names]
    return entries


def select_weights(
    model: nn.Module,
    family: str = "auto",
    matrices: Sequence[str] | None = None,
    biases: Sequence[str] | None = None,
) -> Selection:
    """The weights ``model``'s metrics read; every problem raises RecordError now.

    family: one of FAMILY_NAMES or a registered task's name. matrices: names or glob
    patterns of the weights that replace the family's matrices, conv kernels and pooled
    weights (2-D: matrices; 3-D/4-D: conv kernels); biases: names or patterns of the
    biases (default: the family's, or with ``matrices`` the ``.bias`` of each chosen
    ``.weight``; ``[]``: none, so mean_b, median_b and var_b are NaN).
    """
    if not isinstance(model, nn.Module):
        raise RecordError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if family not in FAMILY_NAMES and family not in HYPERPARAMETERS:
        raise RecordError(
            f"family={family!r} is unknown; known families: "
            + ", ".join([*FAMILY_NAMES, *sorted(HYPERPARAMETERS)])
        )
    chosen = detect_family(model) if family == "auto" else family
    if chosen in HYPERPARAMETERS:
        chosen = "task"
    if chosen == "task" and not callable(getattr(model, "weight_groups", None)):
        raise RecordError(
            f"family={family!r} needs a model with weight_groups() (a built-in task's "
            f"model); {type(model).__name__} has none: use family='auto' or matrices="
        )
    matrix_names = None if matrices is None else _match(model, matrices, "matrices")
    if biases is not None:
        bias_names = _match(model, biases, "biases")
    elif matrix_names is not None:
        bias_names = default_biases(_shapes(model), matrix_names)
    else:
        bias_names = None
    label = chosen if matrices is None else "names"
    try:
        entries = _chosen_entries(model, chosen, matrix_names, bias_names)
        groups = _task_rule(bias_names) if entries is None else _entries_rule(entries)
        found = groups(model)
    except (ValueError, AttributeError, KeyError) as error:
        raise RecordError(
            f"family {chosen!r} does not fit {type(model).__name__} ({error}); pass "
            f"family='generic' or matrices=. The model's parameters: {parameter_list(model)}"
        ) from error
    if not found.matrices and not found.kernels:
        raise RecordError(
            f"family {label!r} finds no weight matrix in {type(model).__name__}; pass "
            f"matrices= with names or patterns. The model's parameters: " + parameter_list(model)
        )
    if entries is not None:
        names = selected_names(entries, _shapes(model))
    else:
        names = {key: _storage_names(model, getattr(found, key))
                 for key in ("matrices", "kernels", "weights", "biases")}  # fmt: skip
    return Selection(family=label, groups=groups, names=names)
