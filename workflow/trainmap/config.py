"""Load and validate the workflow config before any job runs.

Every problem raises ``ConfigError`` with the key path and the value, so a user sees
``settings.parity.seeds: [0, 0] has non-unique elements`` instead of a failed job later.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainmap.columns import METRIC_COLUMNS
from trainmap.errors import ConfigError
from trainmap.hyperparameters import HYPERPARAMETERS, parse_params, task_params
from trainmap.series import CheckpointSeries, build_series

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
SETTING_KEYS = {
    *("source", "task", "seeds", "seeds_per_job", "table"),
    *("features", "convergence", "hmm", "alpha"),
}
TRAIN_ONLY_KEYS = {"task", "seeds", "seeds_per_job"}
# source: checkpoints. `model` is not among them for source train, where it stays free
# for a task hyperparameter of that name.
CHECKPOINT_KEYS = {"hub", "checkpoints", "steps", "model", "evals"}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Setting:
    """One validated setting.

    ``params``: the task's full hyperparameters (source train); for source checkpoints,
    ``device`` and, when the family is a task, that task's hyperparameters. ``convergence``
    is empty for a checkpoint series without one (no detour regression).
    """

    name: str
    source: str
    convergence: dict[str, Any]
    hmm: dict[str, Any]
    alpha: float
    features: list[str]
    seeds: list[int] = dataclasses.field(default_factory=list)
    seeds_per_job: int = 1
    task: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: str | None = None
    series: CheckpointSeries | None = None

    def group_of(self, seed: int) -> int:
        """The training job of ``seed``: group g holds the seeds g*n .. g*n + n - 1 that
        the setting lists (n = seeds_per_job). Grouping by value, not by position, keeps
        every seed's group when seeds are added or removed."""
        return seed // self.seeds_per_job

    def seed_groups(self) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for seed in self.seeds:
            groups.setdefault(self.group_of(seed), []).append(seed)
        return groups


def load_yaml(path: str | Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "config"


def _fill_defaults(config: dict, schema: dict) -> dict:
    """Top-level blocks with a dict ``default`` get their missing keys from it."""
    filled = dict(config)
    for key, spec in schema["properties"].items():
        default = spec.get("default")
        if isinstance(default, dict):
            filled[key] = {**default, **filled.get(key, {})}
    return filled


def validate_config(config: dict) -> dict[str, Setting]:
    """Check ``config`` against the schema and every task; return settings by name."""
    schema = load_yaml(SCHEMA_PATH)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    config = _fill_defaults(config, schema)
    return {
        name: _build_setting(name, entry, config)
        for name, entry in sorted(config["settings"].items())
    }


def _build_setting(name: str, entry: dict, config: dict) -> Setting:
    where = f"settings.{name}"
    hmm = {**config["hmm"], **entry.get("hmm", {})}
    common = {
        "name": name,
        "source": entry["source"],
        "convergence": entry.get("convergence", {}),
        "hmm": hmm,
        "alpha": entry.get("alpha", config["detours"]["alpha"]),
        "features": list(entry.get("features", METRIC_COLUMNS)),
    }
    if entry["source"] == "checkpoints":
        return _build_checkpoint_setting(entry, common, where)
    misplaced = sorted((CHECKPOINT_KEYS - {"model"}) & set(entry))
    if misplaced:
        raise ConfigError(f"{where}.{misplaced[0]}: only applies to source 'checkpoints'")
    extra = {k: v for k, v in entry.items() if k not in SETTING_KEYS}
    if entry["source"] == "table":
        if "table" not in entry:
            raise ConfigError(f"{where}.table: required for source 'table'")
        if extra or TRAIN_ONLY_KEYS & set(entry):
            keys = sorted(set(extra) | (TRAIN_ONLY_KEYS & set(entry)))
            raise ConfigError(f"{where}: keys {keys} only apply to source 'train'")
        return Setting(**common, table=entry["table"])
    for key in ("task", "seeds"):
        if key not in entry:
            raise ConfigError(f"{where}.{key}: required for source 'train'")
    params = parse_params(task_params(entry["task"], f"{where}.task"), extra, where)
    seeds = _seed_list(entry["seeds"])
    return Setting(
        **common,
        seeds=seeds,
        seeds_per_job=entry.get("seeds_per_job", 1),
        task=entry["task"],
        params=dataclasses.asdict(params),
    )


def _seed_list(seeds: int | list[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else sorted(seeds)


def _build_checkpoint_setting(entry: dict, common: dict, where: str) -> Setting:
    """source: checkpoints: a series per seed, its family and the optional evals."""
    for key in ("task", "seeds_per_job", "table"):
        if key in entry:
            raise ConfigError(f"{where}.{key}: does not apply to source 'checkpoints'")
    if "seeds" not in entry:
        raise ConfigError(f"{where}.seeds: required for source 'checkpoints'")
    seeds = _seed_list(entry["seeds"])
    convergence = common["convergence"]
    wanted = [*common["features"], *([convergence["column"]] if convergence else [])]
    needed = [c for c in dict.fromkeys(wanted) if c not in METRIC_COLUMNS]
    series = build_series(entry, seeds, needed, where)
    extra = {k: v for k, v in entry.items() if k not in SETTING_KEYS | CHECKPOINT_KEYS}
    return Setting(
        **common,
        seeds=seeds,
        params=_family_params(entry.get("model"), extra, where),
        series=series,
    )


def _family_params(model: str | None, extra: dict, where: str) -> dict[str, Any]:
    """``device``, plus the task's hyperparameters when the family is a task (its model is
    rebuilt from them to read the checkpoint's tensors)."""
    if model in HYPERPARAMETERS:
        return dataclasses.asdict(parse_params(HYPERPARAMETERS[model], extra, where))
    for key, value in extra.items():
        if key != "device":
            raise ConfigError(
                f"{where}.{key}: unknown key for source 'checkpoints' (value {value!r}); "
                "task hyperparameters apply only when model is a task"
            )
    device = extra.get("device", "auto")
    if device not in DEVICES:
        raise ConfigError(f"{where}.device: {device!r} is not one of {', '.join(DEVICES)}")
    return {"device": device}
