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
from trainmap.hyperparameters import parse_params, task_params

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
SETTING_KEYS = {
    *("source", "task", "seeds", "seeds_per_job", "vectorize", "table"),
    *("features", "convergence", "hmm", "alpha"),
}
TRAIN_ONLY_KEYS = {"task", "seeds", "seeds_per_job", "vectorize"}


@dataclass(frozen=True)
class Setting:
    """One validated setting. ``params``: the task's full hyperparameters (source train)."""

    name: str
    source: str
    convergence: dict[str, Any]
    hmm: dict[str, Any]
    alpha: float
    features: list[str]
    seeds: list[int] = dataclasses.field(default_factory=list)
    seeds_per_job: int = 1
    vectorize: str = "auto"  # auto | true | false (YAML booleans normalised)
    task: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: str | None = None

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
        "convergence": entry["convergence"],
        "hmm": hmm,
        "alpha": entry.get("alpha", config["detours"]["alpha"]),
        "features": list(entry.get("features", METRIC_COLUMNS)),
    }
    if entry["source"] == "checkpoints":
        raise ConfigError(f"{where}.source: 'checkpoints' is on the roadmap, not implemented")
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
    seeds = entry["seeds"]
    seeds = list(range(seeds)) if isinstance(seeds, int) else sorted(seeds)
    return Setting(
        **common,
        seeds=seeds,
        seeds_per_job=entry.get("seeds_per_job", 1),
        vectorize=str(entry.get("vectorize", "auto")).lower(),
        task=entry["task"],
        params=dataclasses.asdict(params),
    )
