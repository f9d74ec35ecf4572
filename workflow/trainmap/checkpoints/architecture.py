"""A checkpoint's architecture from its config.json, on the meta device, and the generic
rule's tensors named as the checkpoint names them.

transformers builds the model that config.json describes (``architectures[0]``, else the
``AutoModel`` of its ``model_type``) on the meta device: no weights, no memory. Its module
types decide the rule (``trainmap.metrics.generic.generic_entries``). A checkpoint may name
its tensors otherwise than the model does (transformers saves mixture-of-experts experts one
Linear each, ``experts.<e>.w1.weight``, where the model holds one 3-D ``gate_up_proj``; a
checkpoint saved from the base model has no ``model.`` prefix): each checkpoint tensor is
mapped to the model's parameter the way transformers' own loading maps it (its conversion
mapping, ``get_model_conversion_mapping`` and ``rename_source_key``), and a tensor that a
conversion merges into a parameter (one expert's matrix) counts as the Linear it is.
"""

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoModel
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES

from trainmap.checkpoints.read import CheckpointError
from trainmap.metrics.generic import Entry, generic_entries

Shapes = Mapping[str, Sequence[int]]
SHOWN = 8  # names listed in an error message


def known_model_type(config_file: Path) -> str:
    """config.json's ``model_type``, refused where transformers does not know it."""
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{config_file}: cannot read the model config: {error}") from error
    if model_type not in CONFIG_MAPPING_NAMES:
        raise CheckpointError(
            f"{config_file}: model_type {model_type!r} is not an architecture transformers "
            f"{transformers.__version__} knows, so the generic rule cannot build it; name the "
            "tensors with matrices: (and biases:) patterns, or upgrade transformers"
        )
    return model_type


def meta_model(folder: Path) -> nn.Module:
    """The model ``folder/config.json`` describes, built on the meta device."""
    config_file = folder / "config.json"
    known_model_type(config_file)
    try:
        return _build(config_file.read_text())
    except Exception as error:  # transformers raises many types for a config it cannot build
        message = f"{config_file}: transformers cannot build the model: {error}"
        raise CheckpointError(message) from error


@functools.lru_cache(maxsize=4)
def _build(text: str) -> nn.Module:
    """Cached per config.json text: a series' checkpoints share one architecture (a
    1B model's meta build takes a second)."""
    data = json.loads(text)
    config = CONFIG_MAPPING[data["model_type"]].from_dict(data)
    classes = [getattr(transformers, name, None) for name in config.architectures or []]
    model_class = next((c for c in classes if isinstance(c, type)), None)
    with torch.device("meta"):
        if model_class is not None:
            return model_class(config)
        return AutoModel.from_config(config)


def _conversions(model: nn.Module) -> tuple[list, list]:
    mapping = get_model_conversion_mapping(model) if hasattr(model, "config") else []
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    return renamings, converters


def _target(key: str, model: nn.Module, conversions, meta: Mapping) -> tuple[str, bool]:
    """The model parameter a checkpoint key loads into, and whether a conversion merges
    it (as transformers' convert_and_load_state_dict_in_model decides)."""
    prefix = getattr(model, "base_model_prefix", None) or None
    target, pattern = rename_source_key(key, *conversions, prefix, meta)
    if target not in meta and key in meta:
        target, pattern = rename_source_key(key, [], [], prefix, meta)
    return target, pattern is not None


def checkpoint_entries(model: nn.Module, shapes: Shapes, where: str) -> list[Entry]:
    """The generic rule's entries for ``model``, named and shaped as the checkpoint's
    tensors (``shapes``: name -> shape of every tensor in it). Raises CheckpointError where
    a tensor's shape is not the config's or a parameter the rule reads has no tensor."""
    planned = {entry.name: entry for entry in generic_entries(model)}
    meta = model.state_dict()
    conversions = _conversions(model)
    found: dict[str, list[Entry]] = {name: [] for name in planned}
    for key, shape in shapes.items():
        target, merged = _target(key, model, conversions, meta)
        entry = planned.get(target)
        if entry is None:
            continue  # embeddings, norms, the LM head, buffers: not read
        if merged:  # one piece of a merged parameter: an expert's Linear weight or bias
            kind = "linear" if len(shape) == 2 and entry.kind != "bias" else "bias"
            found[target].append(Entry(key, kind))
            continue
        expected = tuple(meta[target].shape)
        if tuple(shape) != expected:
            raise CheckpointError(
                f"{where}: tensor {key} has shape {tuple(shape)}, the model its config.json "
                f"describes ({type(model).__name__}) has {expected} for {target}"
            )
        found[target].append(Entry(key, entry.kind, entry.sizes, entry.interleaved,
                                   entry.transposed))  # fmt: skip
    missing = [name for name, pieces in found.items() if not pieces]
    if missing:
        raise CheckpointError(
            f"{where}: holds no tensor for {len(missing)} parameter(s) of the "
            f"{type(model).__name__} its config.json describes: {', '.join(missing[:SHOWN])}"
            f"{' ...' if len(missing) > SHOWN else ''}; it holds "
            + ", ".join(list(shapes)[:SHOWN])
            + (" ..." if len(shapes) > SHOWN else "")
        )
    return [piece for pieces in found.values() for piece in pieces]
