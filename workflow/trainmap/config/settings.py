"""Load and validate the workflow config before any job runs.

Every problem raises ``ConfigError`` with the key path and the value, so a user sees
``settings.parity.seeds: [0, 0] has non-unique elements`` instead of a failed job later.
"""

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trainmap.checkpoints.series import CheckpointSeries, build_series
from trainmap.errors import ConfigError
from trainmap.function_space.features import pc_features, pc_number
from trainmap.hmm.blocks import check_predicted_blocks
from trainmap.hmm.split import check_predicted_split, check_resamples, trained_checkpoints
from trainmap.io.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.tasks.hyperparameters import HYPERPARAMETERS, task_params
from trainmap.tasks.params import parse_params
from trainmap.workflow_dir import workflow_dir

# In the checkout and in an installed wheel alike (trainmap.workflow_dir).
SCHEMA_PATH = workflow_dir() / "workflow" / "schemas" / "config.schema.yaml"
COMMON_KEYS = {"source", "features", "convergence", "hmm", "stability", "alpha", "live"}
# Keys that only apply to one source; any other key of a trained setting is a task
# hyperparameter. A key of another source is refused, in every direction.
SOURCE_KEYS = {
    "train": {"task", "seeds", "seeds_per_job", "resume_every", "vectorize", "probe"},
    "table": {"table"},
    "runs": {"runs", "probe"},  # a directory of runs recorded with trainmap.record
    # `model` names the checkpoints' family; a task hyperparameter of that name would clash.
    "checkpoints": {
        *("seeds", "hub", "checkpoints", "steps", "model", "evals", "threads", "metrics"),
        *("matrices", "biases"),
    },
}
SETTING_KEYS = COMMON_KEYS.union(*SOURCE_KEYS.values())
# Columns that identify a row: never a feature (they would overwrite the ids).
ID_COLUMNS = ("setting", "seed", "run", "step", "diverged")
# What a trained run logs per checkpoint (metrics.parquet), besides the ids.
TRAINED_COLUMNS = ("step", *RUN_COLUMNS, *METRIC_COLUMNS)
DEFAULT_RESUME_EVERY = 60.0  # seconds; BENCHMARKS.md measures its overhead
DEVICES = ("auto", "cpu", "cuda")
PROBE_DEFAULTS = {"split": "eval", "seed": 0, "components": 10}  # as the schema says
LIVE_FRACTIONS = (0.1, 0.25, 0.5)  # live.fractions, as the schema says


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
    stability: dict[str, Any]
    features: list[str]
    seeds: list[int] = dataclasses.field(default_factory=list)
    seeds_per_job: int = 1
    resume_every: float = DEFAULT_RESUME_EVERY
    vectorize: str = "auto"  # auto | true | false (YAML booleans normalised)
    task: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    # source train: training examples per epoch as the task's keys give them (None where
    # only the data tells; the task's params class knows, trainmap.tasks.params).
    train_examples: int | None = None
    table: str | None = None
    runs: str | None = None
    series: CheckpointSeries | None = None
    threads: int = 1  # source checkpoints: the metrics job's threads
    spectra: str = "exact"  # source checkpoints: metrics: {spectra: exact | sketched}
    # The tensors the metrics read hold no bias (mean_b, median_b, var_b NaN throughout,
    # left out of the default features): trainmap.checkpoints.validate finds it.
    bias_free: bool = False
    # Function space (source train): {n, split, seed, components}, or empty (no probe).
    probe: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The live map's evaluation (docs/live.md): {fractions}, or empty (not evaluated).
    live: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The config named `features` (False: the default 14 metrics, from which the bias
    # metrics are left out for models without biases; trainmap.io.biases).
    features_given: bool = True

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
    """A YAML mapping; an empty file is ``{}`` (validate_config refuses it)."""
    with open(path) as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, got {type(data).__name__}")
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "config"


def _message(error: jsonschema.ValidationError) -> str:
    """The error and, for oneOf/anyOf, why each alternative failed.

    Type mismatches are left out when another alternative fits the value's type:
    ``seeds: [1, 1]`` reports the duplicate, not that a list is no integer.
    """
    text = f"{_key_path(error)}: {error.message}"
    if not error.context:
        return text
    reasons = [e for e in error.context if e.validator != "type"] or list(error.context)
    details = sorted({f"{_key_path(e)}: {e.message}" for e in reasons})
    return f"{text} ({'; '.join(details)})"


def _fill_defaults(config: dict, schema: dict) -> dict:
    """Top-level blocks with a dict ``default`` get their missing keys from it."""
    filled = dict(config)
    for key, spec in schema["properties"].items():
        default = spec.get("default")
        if isinstance(default, dict):
            filled[key] = {**default, **filled.get(key, {})}
    return filled


# JSON Schema counts 1.0 as an integer; seeds, groups and state counts must be ints.
STRICT_INTEGERS = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


EMPTY_CONFIG = (
    "the config is empty: give at least one setting under `settings:` "
    "(config/README.md); an empty config file never falls back to the default"
)


def schema_problems(config: dict) -> list[str]:
    """Every schema violation of ``config``, as ``key.path: problem``, sorted by path."""
    validator = STRICT_INTEGERS(load_yaml(SCHEMA_PATH))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [_message(e) for e in errors]


def validate_config(config: dict, predict_split: bool = True) -> dict[str, Setting]:
    """Check ``config`` against the schema and every task; return settings by name.

    predict_split: also refuse a validation split the runs will make too small to choose
    K (``check_split``); False only where no HMM is fitted (tests of one stage).
    """
    if not config:
        raise ConfigError(EMPTY_CONFIG)
    problems = schema_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    _check_finite(config, "")
    given = {key: config.get(key, {}) for key in PRESET_BLOCKS}  # before the defaults
    config = _fill_defaults(config, load_yaml(SCHEMA_PATH))
    settings = {
        name: _build_setting(name, entry, config, given)
        for name, entry in sorted(config["settings"].items())
    }
    if predict_split:
        for setting in settings.values():
            check_split(setting)
    return settings


def _check_finite(value: Any, where: str) -> None:
    """YAML's .nan and .inf pass every JSON-schema bound (NaN compares false): refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where or 'config'}: {value!r} is not a finite number")
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = list(enumerate(value)) if isinstance(value, list) else []
    for key, item in items:
        _check_finite(item, f"{where}.{key}" if where else str(key))


# hmm.protocol: paper restores the paper's HMM protocol (METHOD.md sections 3-4) for every
# key the config leaves unset; `default` is the schema's (docs/stability.md says why).
PROTOCOLS = {
    "default": {"hmm": {}, "stability": {}},
    "paper": {
        "hmm": {"normalize": "per_run", "n_iter": 32, "keep_by": "val_loglik", "refit": False},
        "stability": {"resamples": 0},
    },
}
PRESET_BLOCKS = ("hmm", "stability")


def _block(block: str, entry: dict, config: dict, given: dict) -> dict[str, Any]:
    """A setting's ``hmm`` or ``stability`` keys: the schema's defaults, then its
    protocol's, then the top-level keys given, then the setting's own."""
    protocol = {**given["hmm"], **entry.get("hmm", {})}.get("protocol", "default")
    return {
        **config[block],
        **PROTOCOLS[protocol][block],
        **given[block],
        **entry.get(block, {}),
    }


def _build_setting(name: str, entry: dict, config: dict, given: dict) -> Setting:
    where = f"settings.{name}"
    hmm = _one_run_selection(_block("hmm", entry, config, given), entry)
    source = entry["source"]
    common = {
        "name": name,
        "source": source,
        "convergence": entry.get("convergence", {}),  # optional for checkpoints only
        "hmm": hmm,
        "alpha": entry.get("alpha", config["detours"]["alpha"]),
        "stability": _one_run_stability(_block("stability", entry, config, given), hmm, entry),
        "features": list(entry.get("features", METRIC_COLUMNS)),
        "features_given": "features" in entry,
        "live": _live(entry, hmm, where),
    }
    _check_folds(hmm, entry, where)
    if source in ("table", "runs") and source not in entry:
        raise ConfigError(f"{where}.{source}: required for source {source!r}")
    _check_source_keys(entry, where)
    _check_features(common["features"], where)
    if source == "checkpoints":
        return _build_checkpoint_setting(entry, common, where)
    if source in ("table", "runs"):
        _check_table_keys(entry, source, where)
        if source == "table" and Path(entry["table"]).is_dir():
            raise ConfigError(
                f"{where}.table: {entry['table']!r} is a directory; a table is one .parquet "
                "or .csv file"
            )
        probe = _recorded_probe(entry, where) if source == "runs" else {}
        if source == "runs":
            _check_pc_features(common["features"], probe, where)
        return Setting(**common, **{source: entry[source]}, probe=probe)
    for key in ("task", "seeds"):
        if key not in entry:
            raise ConfigError(f"{where}.{key}: required for source 'train'")
    probe = _trained_probe(entry, where)
    _check_pc_features(common["features"], probe, where)
    pcs = pc_features(common["features"])
    plain = [f for f in common["features"] if f not in pcs]
    _check_trained_columns(plain, entry["convergence"]["column"], where)
    extra = {k: v for k, v in entry.items() if k not in SETTING_KEYS}
    params_class = task_params(entry["task"], f"{where}.task")
    _check_unknown_keys(extra, params_class, where)
    params = parse_params(params_class, extra, where)
    seeds = _seed_list(entry["seeds"])
    return Setting(
        **common,
        seeds=seeds,
        seeds_per_job=entry.get("seeds_per_job", 1),
        resume_every=float(entry.get("resume_every", DEFAULT_RESUME_EVERY)),
        vectorize=str(entry.get("vectorize", "auto")).lower(),
        task=entry["task"],
        params=dataclasses.asdict(params),
        train_examples=params.train_examples(),
        probe=probe,
    )


def _live(entry: dict, hmm: dict[str, Any], where: str) -> dict[str, Any]:
    """The live map's evaluation (``live: {fractions}``), {} for none. A per-run z-scored
    map cannot be used live, and without a convergence rule there is nothing to predict."""
    if "live" not in entry:
        return {}
    if "convergence" not in entry:
        raise ConfigError(f"{where}.live: needs a convergence rule (convergence:) to predict")
    if hmm["normalize"] != "global":
        raise ConfigError(
            f"{where}.live: needs hmm.normalize: global (now {hmm['normalize']!r}): a per-run "
            "z-score needs the whole run, which a run still training does not have"
        )
    fractions = entry["live"].get("fractions", LIVE_FRACTIONS)
    return {"fractions": sorted(float(f) for f in fractions)}


def _trained_probe(entry: dict, where: str) -> dict[str, Any]:
    """source train: the probe set to draw (n required), with its defaults; {} for none."""
    if "probe" not in entry:
        return {}
    if "n" not in entry["probe"]:
        raise ConfigError(f"{where}.probe.n: required (the number of probe examples to draw)")
    return {**PROBE_DEFAULTS, **entry["probe"]}


def _recorded_probe(entry: dict, where: str) -> dict[str, Any]:
    """source runs: the runs recorded their own probe losses (``Recorder.log(...,
    probe_losses=...)``), so only ``components`` applies; {} for none."""
    if "probe" not in entry:
        return {}
    for key in sorted(set(entry["probe"]) - {"components"}):
        raise ConfigError(
            f"{where}.probe.{key}: recorded runs bring their own probe losses "
            "(Recorder.log(..., probe_losses=...)); only probe.components applies"
        )
    return {"components": entry["probe"].get("components", PROBE_DEFAULTS["components"])}


def _check_pc_features(features: list[str], probe: dict, where: str) -> None:
    """pc1, pc2, ... (function-space components, trainmap.function_space.features) need
    the probe set and at most probe.components components."""
    pcs = pc_features(features)
    if not pcs:
        return
    if not probe:
        raise ConfigError(
            f"{where}.features: {pcs} are function-space components, which need a probe "
            f"set: add {where}.probe (e.g. probe: {{n: 512}}), or remove them"
        )
    components = probe["components"]
    beyond = [f for f in pcs if pc_number(f) > components]
    if beyond:
        raise ConfigError(
            f"{where}.features: {beyond} exceed the {components} components of the PCA "
            f"({where}.probe.components: {components}); raise it or name pc1..pc{components}"
        )


def _one_run_selection(hmm: dict[str, Any], entry: dict) -> dict[str, Any]:
    """A setting of one seed has no second run to validate on: ``selection: split`` (the
    default) becomes ``time``, K chosen on blocks of its checkpoints (trainmap.hmm.blocks).
    A table's or a runs folder's runs are only known from the data: with one run, set
    ``hmm.selection: time`` (the split says so)."""
    if "seeds" in entry and len(_seed_list(entry["seeds"])) == 1 and hmm["selection"] == "split":
        return {**hmm, "selection": "time"}
    return hmm


def _one_run_stability(stability: dict[str, Any], hmm: dict, entry: dict) -> dict[str, Any]:
    """Resamples redraw which runs fit and which validate: K over time has none to redraw.
    Under ``selection: time`` the top-level ``stability.resamples`` (the default config's
    5) is 0 for the setting; resamples the setting asks for itself are refused
    (trainmap.hmm.split.check_resamples)."""
    if hmm["selection"] != "time" or "resamples" in entry.get("stability", {}):
        return stability
    return {**stability, "resamples": 0}


def _check_folds(hmm: dict[str, Any], entry: dict, where: str) -> None:
    """``selection: kfold`` validates every run once: at most one fold per run. A table's
    runs are only known when it is read (trainmap.hmm.sequences checks them there)."""
    if hmm["selection"] != "kfold" or "seeds" not in entry:
        return
    n_runs = len(_seed_list(entry["seeds"]))
    if hmm["folds"] > n_runs:
        raise ConfigError(
            f"{where}.hmm.folds: {hmm['folds']} folds need at least {hmm['folds']} runs, "
            f"the setting has {n_runs}; lower hmm.folds or use selection: split "
            "(selection: time for one run)"
        )


def check_split(setting: Setting) -> None:
    """The validation split and the resamples the setting's runs will give, refused now
    if too small (not after every seed trained); settings whose run lengths only the data
    tells are checked for what their seeds say."""
    where = f"settings.{setting.name}"
    counts, how, more = _predicted_checkpoints(setting, where)
    if setting.source in ("train", "checkpoints"):
        check_resamples(
            counts or dict.fromkeys(setting.seeds), setting.stability, setting.hmm, where
        )
    if setting.hmm.get("selection") == "time" and counts is not None:
        check_predicted_blocks(counts, setting.hmm, where, how, more)
        return
    if setting.hmm.get("selection") in ("kfold", "time") or counts is None:
        return  # kfold: each fold's rows are checked when the runs are dealt
    check_predicted_split(counts, setting.hmm, where, how, more)


def _predicted_checkpoints(setting: Setting, where: str):
    """(run -> checkpoints, how that is known, which keys give more), or Nones where
    only the data tells."""
    if setting.source == "train":
        predicted = trained_checkpoints(setting.params, setting.train_examples)
        if predicted is None:
            return None, None, None
        count, how = predicted
        more = f"more checkpoints per run ({where}.epochs, {where}.eval_every)"
        return dict.fromkeys(setting.seeds, count), how, more
    if setting.source == "checkpoints":
        counts = {seed: len(setting.series.steps[seed]) for seed in setting.seeds}
        low, high = min(counts.values()), max(counts.values())
        how = f"{low}{'' if low == high else f' to {high}'} checkpoints per run"
        return counts, how, f"list more steps ({where}.steps)"
    return None, None, None


def _seed_list(seeds: int | list[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else sorted(seeds)


def _build_checkpoint_setting(entry: dict, common: dict, where: str) -> Setting:
    """source: checkpoints: a series per seed, its family and the optional evals."""
    if "seeds" not in entry:
        raise ConfigError(f"{where}.seeds: required for source 'checkpoints'")
    seeds = _seed_list(entry["seeds"])
    convergence = common["convergence"]
    wanted = [*common["features"], *([convergence["column"]] if convergence else [])]
    needed = [c for c in dict.fromkeys(wanted) if c not in METRIC_COLUMNS]
    series = build_series(entry, seeds, needed, where)
    extra = {k: v for k, v in entry.items() if k not in SETTING_KEYS}
    return Setting(
        **common,
        seeds=seeds,
        params=_family_params(entry.get("model"), extra, where),
        series=series,
        threads=entry.get("threads", 1),
        spectra=entry.get("metrics", {}).get("spectra", "exact"),
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


def _check_source_keys(entry: dict, where: str) -> None:
    """Keys that belong to another source only are refused (never silently dropped)."""
    source = entry["source"]
    own = SOURCE_KEYS.get(source, set())
    foreign = sorted(set(entry) & (SETTING_KEYS - COMMON_KEYS - own))
    if foreign:

        def owners(key: str) -> str:
            return " or ".join(repr(s) for s, keys in SOURCE_KEYS.items() if key in keys)

        which = ", ".join(f"{key} (source {owners(key)})" for key in foreign)
        verb, pronoun = ("does", "it") if len(foreign) == 1 else ("do", "them")
        raise ConfigError(
            f"{where}: {which} {verb} not apply to source {source!r}; remove {pronoun}"
        )


def _check_features(features: list[str], where: str) -> None:
    ids = [f for f in features if f in ID_COLUMNS]
    if ids:
        raise ConfigError(
            f"{where}.features: {ids} identify a run's rows and cannot be features "
            f"(id columns: {', '.join(ID_COLUMNS)})"
        )


def _check_trained_columns(features: list[str], column: str, where: str) -> None:
    """A trained run logs TRAINED_COLUMNS: anything else would fail after training."""
    allowed = ", ".join(TRAINED_COLUMNS)
    unknown = [f for f in features if f not in TRAINED_COLUMNS]
    if unknown:
        raise ConfigError(f"{where}.features: {unknown} are not logged by training; "
                          f"choose from {allowed}")  # fmt: skip
    if column not in TRAINED_COLUMNS:
        raise ConfigError(f"{where}.convergence.column: {column!r} is not logged by "
                          f"training; choose from {allowed}")  # fmt: skip


def _check_table_keys(entry: dict, source: str, where: str) -> None:
    """A key a table (or recorded runs) setting does not know: a typo of one of its keys
    (did you mean), a task hyperparameter (only for source train), or unknown."""
    own = sorted(COMMON_KEYS | SOURCE_KEYS[source])
    hyper = {f.name for params in HYPERPARAMETERS.values() for f in dataclasses.fields(params)}
    for key in sorted(k for k in entry if k not in SETTING_KEYS):
        close = difflib.get_close_matches(key, own, n=1)
        if close:
            problem = f"unknown key for source {source!r}; did you mean {close[0]!r}?"
        elif key in hyper:
            problem = "a task hyperparameter; it only applies to source 'train'"
        else:
            problem = f"unknown key for source {source!r}"
        raise ConfigError(
            f"{where}.{key}: {problem} (value {entry[key]!r}); keys of a {source} setting: "
            + ", ".join(own)
        )


def _check_unknown_keys(extra: dict, params_class: type, where: str) -> None:
    """A key that is neither a setting key nor the task's: name the likely intended one
    (a typo such as ``vectorise`` otherwise reads as an unknown task hyperparameter)."""
    known = {f.name for f in dataclasses.fields(params_class)}
    setting_keys = sorted(COMMON_KEYS | SOURCE_KEYS["train"])
    for key in extra:
        if key not in known:
            close = difflib.get_close_matches(key, [*setting_keys, *known], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}.{key}: unknown key (value {extra[key]!r}){hint} Setting keys: "
                f"{', '.join(setting_keys)}; this task's keys: {', '.join(sorted(known))}"
            )
