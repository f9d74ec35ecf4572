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
- ``generic``: every 2-D weight of a ``nn.Linear`` (and of a layer that acts as one:
  transformers' ``Conv1D``, ``nn.MultiheadAttention``'s input projection, split into Q,
  K and V) is a matrix; ``nn.Conv1d``/``nn.Conv2d`` kernels with a spatial size above
  1 x 1 are conv kernels (1 x 1 kernels only enter the pooled weights); embeddings,
  positional tables, normalisation layers and any Linear that shares its weight with an
  embedding (a tied output head) are left out, because only those layer types are read;
  biases are the biases of the layers read.
``matrices=`` / ``biases=`` take parameter names or glob patterns (``fnmatch``: ``*``,
``?``, ``[...]``) instead: see ``select_weights``.
"""

import fnmatch
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from trainmap.checkpoints.series import TRANSFORMER_FAMILIES
from trainmap.errors import RecordError
from trainmap.metrics.families import FAMILIES
from trainmap.metrics.weights import WeightGroups
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


def _is_conv1d_linear(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2): a Linear with its weight stored (in, out)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def generic_groups(model: nn.Module) -> WeightGroups:
    """The generic rule of METHOD.md section 2 (module docstring)."""
    embedded = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    groups = WeightGroups(matrices=[])
    for module in model.modules():  # each module once, shared ones included
        if isinstance(module, nn.Linear) or _is_conv1d_linear(module):
            if module.weight.data_ptr() in embedded:  # an output head tied to an embedding
                continue
            groups.matrices.append(module.weight)
            groups.weights.append(module.weight)
        elif isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:  # (3 d, d): rows [Q; K; V]
                parts = list(module.in_proj_weight.chunk(3, dim=0))
            else:
                parts = [module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
            groups.matrices += parts
            groups.weights += parts
            if module.in_proj_bias is not None:
                groups.biases.append(module.in_proj_bias)
            continue  # its out_proj is a nn.Linear, read on its own
        elif isinstance(module, nn.Conv1d | nn.Conv2d):
            kernel = module.weight if module.weight.ndim == 4 else module.weight[:, :, None]
            if kernel.shape[-2] * kernel.shape[-1] > 1:
                groups.kernels.append(kernel)
            groups.weights.append(module.weight)
        else:
            continue
        if module.bias is not None:
            groups.biases.append(module.bias)
    return groups


def _family_groups(family: str) -> Callable[[nn.Module], WeightGroups]:
    if family == "task":
        return lambda model: model.weight_groups()
    if family in ("generic", "resnet"):
        return generic_groups
    rule = FAMILIES[family]

    def transformer_groups(model: nn.Module) -> WeightGroups:
        config = model.config.to_dict() if hasattr(model, "config") else {}
        return rule(dict(model.named_parameters()), config)

    return transformer_groups


def _is_matrix(p: torch.Tensor) -> bool:
    return p.ndim in (2, 3, 4)  # a matrix, or a Conv1d / Conv2d kernel


def _match(model: nn.Module, patterns: Sequence[str], what: str) -> list[str]:
    """Parameter names matching any of ``patterns``, in the model's order; every pattern
    must match at least one name. For matrices=, a pattern's 0-D/1-D matches (biases,
    norm weights) are passed over, and a pattern with no matrix among them is an error."""
    if isinstance(patterns, str):
        raise RecordError(f"{what}= takes a list of names or patterns, got the string "
                          f"{patterns!r}; write [{patterns!r}]")  # fmt: skip
    params = dict(model.named_parameters())
    chosen = set()
    for pattern in patterns:
        found = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise RecordError(
                f"{what}=: {pattern!r} matches no parameter of the model; its parameters: "
                + parameter_list(model)
            )
        if what == "matrices":
            if not any(_is_matrix(params[n]) for n in found):
                shapes = ", ".join(f"{n} {tuple(params[n].shape)}" for n in found[:5])
                raise RecordError(
                    f"matrices=: {pattern!r} matches no matrix (2-D) or conv kernel (3-D, "
                    f"4-D), only {shapes}; pass biases as biases=. The model's parameters: "
                    + parameter_list(model)
                )
            found = [n for n in found if _is_matrix(params[n])]
        chosen.update(found)
    return [n for n in params if n in chosen]


def _named_groups(matrix_names, bias_names, base):
    """A rule reading parameters by name: 2-D ones are matrices, 3-D/4-D conv kernels."""

    def groups(model: nn.Module) -> WeightGroups:
        params = dict(model.named_parameters())
        if matrix_names is None:
            out = base(model)
        else:
            out = WeightGroups(matrices=[])
            for name in matrix_names:
                w = params[name]
                kernel = w if w.ndim == 4 else w[:, :, None] if w.ndim == 3 else None
                if w.ndim == 2:
                    out.matrices.append(w)
                elif kernel.shape[-2] * kernel.shape[-1] > 1:  # 1 x 1 kernels: pooled only
                    out.kernels.append(kernel)
                out.weights.append(w)
        if bias_names is not None:
            out.biases = [params[name] for name in bias_names]
        return out

    return groups


def _default_biases(model: nn.Module, matrix_names: list[str]) -> list[str]:
    """With matrices= and no biases=: the biases of the layers whose weights were chosen."""
    params = dict(model.named_parameters())
    wanted = [n.removesuffix("weight") + "bias" for n in matrix_names if n.endswith("weight")]
    return [n for n in wanted if n in params]


def _storage_names(model: nn.Module, tensors: list[torch.Tensor]) -> list[str]:
    """The names of the parameters whose storage ``tensors`` read (views included)."""
    by_storage = {}
    for name, p in model.named_parameters():
        by_storage.setdefault(p.untyped_storage().data_ptr(), name)
    names = [by_storage.get(t.untyped_storage().data_ptr(), "?") for t in tensors]
    return list(dict.fromkeys(names))


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
    family_groups = _family_groups(chosen)
    matrix_names = None if matrices is None else _match(model, matrices, "matrices")
    if biases is not None:
        bias_names = _match(model, biases, "biases")
    elif matrix_names is not None:
        bias_names = _default_biases(model, matrix_names)
    else:
        bias_names = None
    if matrix_names is None and bias_names is None:
        groups = family_groups
    else:  # the family still gives the matrices when only biases= is passed
        groups = _named_groups(matrix_names, bias_names, family_groups)
    label = chosen if matrices is None else "names"
    try:
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
    names = {
        key: _storage_names(model, getattr(found, key))
        for key in ("matrices", "kernels", "weights", "biases")
    }
    return Selection(family=label, groups=groups, names=names)
