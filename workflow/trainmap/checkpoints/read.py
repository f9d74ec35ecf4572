"""Metrics of checkpoint series that exist already (``source: checkpoints``).

One seed's series -> one metrics table with the columns of a trained run (CONTRACT.md):
here the files of a checkpoint (never unpickled: safetensors, or
``torch.load(weights_only=True)`` for ``.bin`` files), a task family's rule (its own model),
the evals table and the seed's table; ``trainmap.checkpoints.stream`` computes the metrics
layer by layer. Losses and accuracies come from the setting's ``evals`` table,
joined by (seed, step); without one they are NaN. ``diverged`` marks a series with a non-
finite weight metric at any checkpoint: losses are not computed here, and a NaN loss may
only mean "not evaluated".

Hub checkpoints are fetched with ``huggingface_hub.snapshot_download`` (transformers' own
download and cache, ``HF_HOME``/``HF_HUB_CACHE``): only config.json and the weight files.
"""

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from trainmap.checkpoints.series import TRANSFORMER_FAMILIES, WEIGHT_FILES, known_families
from trainmap.errors import ConfigError
from trainmap.io.biases import checked_columns
from trainmap.io.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.io.tables import read_table
from trainmap.metrics.families import FAMILIES, GroupRule, Tensors
from trainmap.metrics.weights import WeightGroups
from trainmap.tasks.hyperparameters import HYPERPARAMETERS
from trainmap.tasks.registry import get_task

log = logging.getLogger(__name__)


def _task_rule(task_name: str) -> GroupRule:
    """A task family: rebuild the task's model, load the tensors, ask the model."""

    def rule(tensors: Tensors, params: Mapping[str, Any]) -> WeightGroups:
        task = get_task(task_name)
        model = task.make_model(task.params(**params))
        model.load_state_dict(dict(tensors), strict=True)
        return model.weight_groups()

    return rule


def family_rule(name: str | None, where: str = "model") -> GroupRule:
    """The weight-group rule of family ``name``: a transformer family's, or a task's own
    model's; unknown names list the known families."""
    if name in FAMILIES:
        return FAMILIES[name]
    if name in HYPERPARAMETERS:
        return _task_rule(name)
    raise ConfigError(
        f"{where}: unknown model family {name!r}; known families: " + ", ".join(known_families())
    )


# What a Hub snapshot needs: config.json and the top-level weights of a save_pretrained
# directory (single or sharded); TF/Flax weights, tokenizers and subfolders stay remote.
HUB_FILES = [
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model-*-of-*.bin",
]
TORCH_SUFFIXES = (".bin", ".pt", ".pth")


class CheckpointError(ValueError):
    """A checkpoint the workflow cannot read; the message names its path or repository."""


def hub_snapshot(spec: str) -> Path:
    """The local snapshot of Hub repository ``owner/name[@revision]`` (downloaded or cached).

    Offline (no network, or ``HF_HUB_OFFLINE=1``) only the local cache is read; a miss is
    a CheckpointError that says so and how to fill the cache.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    repo_id, _, revision = spec.partition("@")
    try:
        path = snapshot_download(repo_id, revision=revision or None, allow_patterns=HUB_FILES)
    except Exception as error:  # huggingface_hub, httpx and OSError raise many types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fetch = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
        raise CheckpointError(
            f"{spec}: cannot get the checkpoint from the Hugging Face Hub "
            f"({type(error).__name__}: {first_line}). Without a network (or with "
            f"HF_HUB_OFFLINE=1) only the local cache {HF_HUB_CACHE} is read: fill it first "
            f"(`{fetch}`), or copy the checkpoints and point `checkpoints:` at them"
        ) from error
    return Path(path)


def weight_files(path: Path) -> list[Path]:
    """The weight files of a checkpoint: a save_pretrained directory (the first of
    WEIGHT_FILES; a sharded one's shards, from its index), or a weights file."""
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return weight_files(path / name)
        raise CheckpointError(f"{path}: no weights file; looked for {', '.join(WEIGHT_FILES)}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise CheckpointError(f"{path}: cannot read the shard index: {error}") from error
        return [path.parent / shard for shard in shards]
    if path.suffix != ".safetensors" and path.suffix not in TORCH_SUFFIXES:
        raise CheckpointError(f"{path}: not a weights file (.safetensors, .bin, .pt, .pth)")
    return [path]


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """``name -> tensor`` of a checkpoint: a save_pretrained directory or a weights file.

    Directories: the first of WEIGHT_FILES present (sharded checkpoints through their
    index). Files: ``.safetensors``, or ``.bin``/``.pt``/``.pth`` with
    ``torch.load(weights_only=True)``. Tensors land on the CPU.
    """
    return {name: t for file in weight_files(Path(path)) for name, t in _read_file(file).items()}


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(path)
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and the unpickler raise many types
        raise unreadable(path, error) from error
    if not isinstance(tensors, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in tensors.values()
    ):
        raise CheckpointError(f"{path}: not a name -> tensor mapping (a state_dict)")
    return dict(tensors)


def unreadable(path: Path, error: Exception) -> CheckpointError:
    """The error for a weights file the reader refused; an empty file's EOFError has no
    message of its own."""
    reason = str(error) or f"{type(error).__name__} (an empty or cut-off file?)"
    return CheckpointError(f"{path}: cannot read the checkpoint: {reason}")


def model_config(path: Path) -> dict[str, Any]:
    """config.json of a save_pretrained directory (or beside a weights file), else {}."""
    folder = path if path.is_dir() else path.parent
    file = folder / "config.json"
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{file}: cannot read the model config: {error}") from error


def weight_groups(path: Path, model: str | None, params: Mapping[str, Any]) -> WeightGroups:
    """The weight groups of the checkpoint at ``path``.

    model: the setting's family (None: config.json's model_type names it); params: the
    task hyperparameters when the family is a task.
    """
    config = model_config(path)
    family = model if model is not None else config.get("model_type")
    where = f"{path}: model" if model is not None else f"{path / 'config.json'}: model_type"
    rule = family_rule(family, where)
    # Transformer families read config.json; task families the task hyperparameters.
    rule_config = config if family in TRANSFORMER_FAMILIES else params
    try:
        return rule(read_weights(path), rule_config)
    except CheckpointError:
        raise
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: weights do not fit family {family!r}: {error}") from error


def read_evals(path: str | Path, seed: int) -> pd.DataFrame:
    """The rows of ``seed`` in an evals table, indexed by step (unique)."""
    path = Path(path)
    table = read_table(path)
    for column in ("seed", "step"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or (values != values.round()).any():
            raise CheckpointError(f"{path}: column {column!r} must hold integers")
        table[column] = values.astype("int64")
    rows = table.loc[table["seed"] == seed].drop(columns="seed")
    duplicated = rows["step"][rows["step"].duplicated()]
    if len(duplicated):
        raise CheckpointError(
            f"{path}: duplicate rows for seed {seed}, step {int(duplicated.iloc[0])}"
        )
    return rows.set_index("step")


def seed_table(
    setting: str,
    seed: int,
    metrics: pd.DataFrame,
    evals: pd.DataFrame | None,
    bias_free: bool = False,
) -> pd.DataFrame:
    """One seed's metrics.parquet: CONTRACT columns, ``diverged``, then the evals' own
    columns (e.g. ``mlm_accuracy``) so that a convergence column can use them.

    metrics: from ``trainmap.checkpoints.stream.series_metrics``; evals: from read_evals
    (None: losses and accuracies NaN); bias_free: the series' model has no bias, so its NaN
    mean_b, median_b, var_b are not divergence.
    """
    table = metrics.copy()
    evals = pd.DataFrame(index=pd.Index([], name="step")) if evals is None else evals
    missing = sorted(int(step) for step in set(table["step"]) - set(evals.index))
    if len(evals.columns) and missing:
        log.warning("seed %d: no evals for steps %s: their values are NaN", seed, missing)
    joined = evals.reindex(table["step"]).reset_index(drop=True)
    for column in RUN_COLUMNS:
        table[column] = pd.to_numeric(joined[column]) if column in joined else math.nan
    table.insert(0, "setting", setting)
    table.insert(1, "seed", seed)
    table = table[["setting", "seed", "step", *RUN_COLUMNS, *METRIC_COLUMNS]].copy()
    checked = table[checked_columns(bias_free)].to_numpy(dtype=float)
    table["diverged"] = not np.isfinite(checked).all()
    extras = [c for c in joined.columns if c not in RUN_COLUMNS]
    return pd.concat([table, joined[extras]], axis=1)
