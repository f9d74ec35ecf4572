"""The generic rule of METHOD.md section 2: which tensors of any ``nn.Module`` the metrics read.

The rule is decided from module types and written as a list of ``Entry`` (a tensor name and
how it enters the metrics), so that it applies alike to a live model (the Recorder) and to a
checkpoint's tensors read layer by layer, the architecture built from its config.json on
the meta device (``trainmap.checkpoints.architecture``). What counts:

- every 2-D weight of a ``nn.Linear`` (and of a layer that acts as one: transformers'
  ``Conv1D``; a module whose only parameters are a 2-D ``weight`` and maybe a ``bias``, such
  as a mixture-of-experts router, unless its class name says norm or embedding) is one
  matrix, whole: attention projections are not split per head, grouped-query K and V count
  as they are. Fused projections in transformers' concatenated layout are split into the
  matrices they hold: ``qkv_proj`` into Q, K and V (sizes from the config's head counts),
  ``gate_up_proj`` into gate and up (halves; SwiGLU's gate, up and down are three matrices).
- mixture-of-experts experts stored as 3-D parameters (transformers' experts modules:
  ``gate_up_proj`` (experts, 2 x intermediate, hidden), ``down_proj``, ...) count like one
  Linear per expert and projection: every expert's gate, up and down matrix is a matrix
  (``is_transposed`` and ``is_concatenated`` of the module say the layout; an interleaved
  gate_up is split into its even and odd rows). A checkpoint that stores experts one Linear
  each (the format transformers saves) gives the same matrices.
- ``nn.MultiheadAttention``'s input projection is split into Q, K and V.
- ``nn.Conv1d`` / ``nn.Conv2d`` kernels with a spatial size above 1 x 1 are conv kernels
  (1 x 1 kernels only enter the pooled weights).
- embeddings (``nn.Embedding`` and its subclasses: positional tables too), normalisation
  layers and the language-model head (what ``get_output_embeddings()`` returns), **tied or
  not**, are excluded, as is any Linear that shares its weight with an embedding; a plain
  classifier's last Linear is not an unembedding and counts.
- biases: the biases of the layers read (all pooled).
"""

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainmap.metrics.groups import WeightGroups

KINDS = ("linear", "fused", "heads", "experts", "mha", "kernel", "bias")


@dataclass(frozen=True)
class Entry:
    """One tensor the metrics read, by name, and how.

    kind: ``linear`` (a 2-D weight: one matrix), ``fused`` (a 2-D weight whose outputs hold
    the matrices of ``sizes``), ``heads`` (GPT-NeoX's query_key_value: outputs laid out
    (heads, [q, k, v], head_size), ``sizes`` = (heads,); whole Q, K, V regrouped),
    ``experts`` (a 3-D stack, one expert per leading index; ``sizes`` (2,) splits each
    expert's output into gate and up, ``interleaved`` says how), ``mha`` (an input
    projection, rows [Q; K; V]), ``kernel`` (a conv weight), ``bias`` (pooled with the
    biases). ``transposed``: stored (in, out) (GPT-2's Conv1D, transposed experts); the
    matrices come out (out, in). Every kind but ``bias`` enters the pooled weights, whole.
    """

    name: str
    kind: str
    sizes: tuple[int, ...] = ()
    interleaved: bool = False
    transposed: bool = False


def matrices_of(entry: Entry, tensor: torch.Tensor) -> list[torch.Tensor]:
    """The matrices an entry's tensor holds (views, no copies)."""
    if entry.kind in ("linear", "fused"):
        rows = tensor.mT if entry.transposed else tensor
        return list(rows.split(list(entry.sizes), dim=0)) if entry.sizes else [rows]
    if entry.kind == "heads":  # rows (heads, [q, k, v], head_size) -> whole Q, K, V
        d_in = tensor.shape[1]
        per_head = tensor.reshape(entry.sizes[0], 3, -1, d_in)
        return [per_head[:, i].reshape(-1, d_in) for i in range(3)]
    if entry.kind == "mha":
        return list(tensor.chunk(3, dim=0))
    if entry.kind == "experts":
        out = []
        for expert in tensor:  # (out, in), or (in, out) where transposed
            rows = expert.mT if entry.transposed else expert
            if not entry.sizes:
                out.append(rows)
            elif entry.interleaved:
                out += [rows[0::2], rows[1::2]]
            else:
                out += list(rows.split(list(entry.sizes), dim=0))
        return out
    return []


def groups_of(entries: Sequence[Entry], tensors: Mapping[str, torch.Tensor]) -> WeightGroups:
    """The WeightGroups of the named ``tensors`` as ``entries`` say (those present only:
    a layer's part of a checkpoint holds its own entries' tensors)."""
    groups = WeightGroups(matrices=[])
    for entry in entries:
        tensor = tensors.get(entry.name)
        if tensor is None:
            continue
        if entry.kind == "bias":
            groups.biases.append(tensor)
            continue
        if entry.kind == "kernel":
            kernel = tensor if tensor.ndim == 4 else tensor[:, :, None]
            if kernel.shape[-2] * kernel.shape[-1] > 1:  # 1 x 1 kernels: pooled only
                groups.kernels.append(kernel)
        else:
            groups.matrices += matrices_of(entry, tensor)
        groups.weights.append(tensor)
    return groups


def selected_names(
    entries: Sequence[Entry], shapes: Mapping[str, Sequence[int]]
) -> dict[str, list[str]]:
    """The tensor names each metric group reads (stored with the run: weights.json);
    shapes: name -> shape (a 1 x 1 conv kernel only enters the pooled weights)."""
    names: dict[str, list[str]] = {"matrices": [], "kernels": [], "weights": [], "biases": []}
    for entry in entries:
        if entry.kind == "bias":
            names["biases"].append(entry.name)
            continue
        if entry.kind != "kernel":
            names["matrices"].append(entry.name)
        elif math.prod(shapes[entry.name][2:]) > 1:
            names["kernels"].append(entry.name)
        names["weights"].append(entry.name)
    return names


def _is_conv1d_linear(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2): a Linear with its weight stored (in, out)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _acts_as_linear(module: nn.Module) -> bool:
    """transformers' Conv1D (GPT-2: weight stored (in, out)), or a module whose only own
    parameters are a 2-D weight and maybe a bias (a router), not a norm or an embedding."""
    if _is_conv1d_linear(module):
        return True
    own = dict(module.named_parameters(recurse=False))
    name = type(module).__name__.lower()
    if "norm" in name or "embed" in name or set(own) - {"weight", "bias"}:
        return False
    weight, bias = own.get("weight"), own.get("bias")
    return weight is not None and weight.ndim == 2 and (bias is None or bias.ndim == 1)


def _head_sizes(config: Any) -> tuple[int, int] | None:
    """(query rows, key or value rows) of a fused qkv projection, from a transformers config."""
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(heads, int) or not isinstance(hidden, int) or heads < 1:
        return None
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return heads * head_dim, kv_heads * head_dim


def _linear_entry(name: str, module: nn.Module, config: Any) -> Entry:
    """A Linear's weight: whole, or split where it is a fused projection (module doc)."""
    if _is_conv1d_linear(module):
        return Entry(name, "linear", transposed=True)
    leaf = name.rsplit(".", 2)[-2] if name.count(".") else ""
    rows = module.weight.shape[0]
    if leaf == "gate_up_proj" and rows % 2 == 0:
        return Entry(name, "fused", (rows // 2, rows // 2))
    if leaf == "qkv_proj":
        sizes = _head_sizes(config)
        if sizes is not None and sizes[0] + 2 * sizes[1] == rows:
            return Entry(name, "fused", (sizes[0], sizes[1], sizes[1]))
    return Entry(name, "linear")


def _expert_entries(prefix: str, module: nn.Module) -> list[Entry]:
    """A 3-D experts module's parameters: each 3-D one a stack of expert matrices, the rest
    (``*_bias``: one bias vector per expert) biases."""
    transposed = bool(getattr(module, "is_transposed", False))
    interleaved = not getattr(module, "is_concatenated", True)
    entries = []
    for pname, p in module.named_parameters(recurse=False):
        name = f"{prefix}{pname}"
        if p.ndim != 3:
            entries.append(Entry(name, "bias"))
            continue
        out = p.shape[-1] if transposed else p.shape[-2]
        split = "gate_up" in pname and out % 2 == 0
        sizes = (out // 2, out // 2) if split else ()
        entries.append(Entry(name, "experts", sizes, interleaved and split, transposed))
    return entries


def _is_experts(module: nn.Module) -> bool:
    own = list(module.parameters(recurse=False))
    return not isinstance(module, nn.Conv1d) and any(p.ndim == 3 for p in own)


def _module_entries(prefix: str, module: nn.Module, config: Any) -> list[Entry]:
    """The entries of one module's own parameters (prefix: its name and a dot)."""
    if isinstance(module, nn.MultiheadAttention):
        if module.in_proj_weight is not None:
            entries = [Entry(f"{prefix}in_proj_weight", "mha")]
        else:
            entries = [Entry(f"{prefix}{p}_proj_weight", "linear") for p in "qkv"]
        if module.in_proj_bias is not None:
            entries.append(Entry(f"{prefix}in_proj_bias", "bias"))
        return entries  # its out_proj is a nn.Linear, read on its own
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        entries = [Entry(f"{prefix}weight", "kernel")]
    elif isinstance(module, nn.Linear) or _acts_as_linear(module):
        entries = [_linear_entry(f"{prefix}weight", module, config)]
    elif _is_experts(module):
        return _expert_entries(prefix, module)
    else:
        return []
    if getattr(module, "bias", None) is not None:
        entries.append(Entry(f"{prefix}bias", "bias"))
    return entries


def generic_entries(model: nn.Module) -> list[Entry]:
    """The generic rule (module doc) applied to ``model`` (live or on the meta device), in
    the model's module order; each shared module once."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    config = getattr(model, "config", None)
    entries = []
    for name, module in model.named_modules():
        if module is head or isinstance(module, nn.Embedding):
            continue
        if id(getattr(module, "weight", None)) in embedding_weights:
            continue  # an output head tied to an embedding that get_output_embeddings misses
        entries += _module_entries(f"{name}." if name else "", module, config)
    return entries


def is_matrix_shape(shape: Sequence[int]) -> bool:
    return len(shape) in (2, 3, 4)  # a matrix, or a Conv1d / Conv2d kernel


def match_names(
    shapes: Mapping[str, Sequence[int]], patterns: Sequence[str], what: str
) -> list[str]:
    """Names of ``shapes`` matching any of ``patterns`` (``fnmatch``), in its order.

    what: ``matrices`` or ``biases``. Every pattern must match a name; for matrices, a
    pattern's 0-D/1-D matches (biases, norm weights) are passed over, and one with no
    matrix among them is an error. Raises ValueError with the reason.
    """
    if isinstance(patterns, str):
        raise ValueError(f"{what} takes a list of names or patterns, got the string "
                         f"{patterns!r}; write [{patterns!r}]")  # fmt: skip
    chosen = set()
    for pattern in patterns:
        found = [n for n in shapes if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise ValueError(f"{what}: {pattern!r} matches nothing")
        if what == "matrices":
            if not any(is_matrix_shape(shapes[n]) for n in found):
                listed = ", ".join(f"{n} {tuple(shapes[n])}" for n in found[:5])
                raise ValueError(
                    f"matrices: {pattern!r} matches no matrix (2-D) or conv kernel (3-D, 4-D), "
                    f"only {listed}; name biases under biases"
                )
            found = [n for n in found if is_matrix_shape(shapes[n])]
        chosen.update(found)
    return [n for n in shapes if n in chosen]


def named_entries(shapes: Mapping[str, Sequence[int]], matrix_names: Sequence[str]) -> list[Entry]:
    """Entries of weights chosen by name: 2-D ones matrices, 3-D/4-D conv kernels."""
    return [Entry(n, "linear" if len(shapes[n]) == 2 else "kernel") for n in matrix_names]


def default_biases(shapes: Mapping[str, Sequence[int]], matrix_names: Sequence[str]) -> list[str]:
    """With matrices named and no biases: the ``.bias`` of each chosen ``.weight``."""
    wanted = [n.removesuffix("weight") + "bias" for n in matrix_names if n.endswith("weight")]
    return [n for n in wanted if n in shapes]
