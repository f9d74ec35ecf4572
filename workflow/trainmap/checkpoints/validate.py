"""Checkpoint series checked before any job: what the metrics will read of each local
checkpoint, from names and shapes only (file headers and config.json, no weights).

``trainmap.config.settings.validate_config`` stays free of torch and transformers (the
analysis scripts import the config); the Snakefile and ``trainmap check`` pass its
settings through ``check_checkpoint_settings``, which builds the architectures on the meta
device (``trainmap.checkpoints.select``). A bad checkpoint (a model_type transformers does
not know, tensors that do not fit config.json, a pattern that matches nothing, a bias
pattern on a bias-free model, no matrix for the rule) is a ConfigError naming the key, the
file and what it holds. A bias-free series gets its default features without mean_b,
median_b and var_b; a features list that names them is refused with the reason.
"""

import dataclasses
from pathlib import Path

from trainmap.checkpoints.read import CheckpointError
from trainmap.checkpoints.select import select_tensors
from trainmap.checkpoints.series import WEIGHT_FILES
from trainmap.config.settings import Setting
from trainmap.errors import ConfigError
from trainmap.io.biases import REASON, default_features, refused_features
from trainmap.tasks.hyperparameters import HYPERPARAMETERS


def check_checkpoint_settings(settings: dict[str, Setting]) -> dict[str, Setting]:
    """``settings`` with every local checkpoint series checked (module doc)."""
    return {name: _checked(setting) for name, setting in settings.items()}


def _checked(setting: Setting) -> Setting:
    series = setting.series
    if setting.source != "checkpoints" or series.hub or series.model in HYPERPARAMETERS:
        return setting  # a Hub series is checked when its job fetches it
    where = f"settings.{setting.name}"
    locations = {seed: list(series.locations(seed).values()) for seed in setting.seeds}
    bias_free = bias_free_series(locations, series.model, series.patterns, f"{where}.checkpoints")
    if not bias_free:
        return dataclasses.replace(setting, series=dataclasses.replace(series, bias_free=False))
    features = setting.features
    named = refused_features(features) if setting.features_given else []
    if named:
        first = locations[setting.seeds[0]][0]
        raise ConfigError(
            f"{where}.features: {named}: {REASON} ({first}; its weights.json will say so); "
            "remove them"
        )
    if not setting.features_given:
        features = [f for f in features if f in default_features(True)]
    return dataclasses.replace(
        setting,
        series=dataclasses.replace(series, bias_free=True),
        bias_free=True,
        features=features,
    )


def bias_free_series(
    locations: dict[int, list[str]], model: str | None, patterns: dict[str, list[str]], where: str
) -> bool:
    """Whether the metrics of the series read no bias; every problem a ConfigError.

    locations: seed -> its checkpoints. Every safetensors checkpoint is checked (a header
    read); of ``.bin`` ones, which must be mapped to be listed, each seed's first. All must
    select the same tensors (a series keeps one architecture).
    """
    records = {}
    for paths in locations.values():
        for i, location in enumerate(paths):
            if i and not _is_safetensors(Path(location)):
                continue
            try:
                records[location] = select_tensors(Path(location), model, **patterns).record()
            except CheckpointError as error:
                raise ConfigError(f"{where}: {error}") from None
    (first, record), *others = records.items()
    for location, other in others:
        if other != record:
            raise ConfigError(
                f"{where}: {location} holds other tensors for the metrics than {first} "
                f"(rule {other['family']!r} vs {record['family']!r}); a series keeps one "
                "architecture"
            )
    return bool(record["bias_free"])


def _is_safetensors(path: Path) -> bool:
    """A safetensors file, or a save_pretrained directory whose weights are safetensors."""
    if path.is_dir():
        return (path / WEIGHT_FILES[0]).is_file() or (path / WEIGHT_FILES[1]).is_file()
    return path.suffix == ".safetensors"
