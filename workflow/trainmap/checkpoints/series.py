"""Checkpoint series that exist already (``source: checkpoints``): where each checkpoint
is, which steps a seed has, and the optional table of evaluations joined to them.

Torch-free: the Snakefile validates the config with these at every start. Reading the
weights and computing metrics is ``trainmap.checkpoints.read``; naming weight groups per model
family is ``trainmap.metrics.families``.

A location pattern holds the fields ``{seed}`` and ``{step}`` (format specs allowed, e.g.
``{step:06d}``). ``hub:`` patterns name Hugging Face Hub repositories, optionally with a
revision after ``@`` (``EleutherAI/pythia-160m-seed{seed}@step{step}``); ``checkpoints:``
patterns name local paths (a ``save_pretrained`` directory or a weights file), relative
to the working directory.
"""

import glob
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.tasks.hyperparameters import HYPERPARAMETERS

# Model families with a registered weight-group rule (trainmap.metrics.families.FAMILIES holds the
# rules; a test checks the two agree). Keys are transformers' ``model_type`` values, so a
# save_pretrained directory's config.json names its family. Every registered task's name
# is a family too (its model rebuilt from the task hyperparameters in the setting).
TRANSFORMER_FAMILIES = ("bert", "gpt2", "gpt_neox")
# ``model:`` also takes ``auto`` (the default: config.json's model_type names a family above,
# else the generic rule on the architecture transformers builds from config.json) and
# ``generic`` (the generic rule whatever the model_type).
RULE_NAMES = ("auto", "generic")
# Weight files of a save_pretrained directory, in order of preference (safetensors first:
# they are read without unpickling; .bin files with torch.load(weights_only=True)).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
FIELDS = ("seed", "step")
RESERVED = ("setting", "diverged")  # columns of metrics.parquet no evals table may set


@dataclass(frozen=True)
class CheckpointSeries:
    """Where a setting's checkpoints are.

    pattern: the ``hub:`` or ``checkpoints:`` value; hub: which of the two it is;
    steps: seed -> its sorted steps; model: the family named in the config (None: auto);
    evals: path of the evaluations table, or None; eval_columns: the evals columns besides
    seed and step; patterns: ``matrices`` and ``biases`` name patterns given (absent keys
    left out); bias_free: whether the tensors the metrics read hold no bias (None: not
    known before the checkpoints are fetched, a Hub series).
    """

    pattern: str
    hub: bool
    steps: dict[int, list[int]]
    model: str | None = None
    evals: str | None = None
    eval_columns: tuple[str, ...] = ()
    patterns: dict[str, list[str]] = field(default_factory=dict)
    bias_free: bool | None = None

    def location(self, seed: int, step: int) -> str:
        return self.pattern.format(seed=seed, step=step)

    def locations(self, seed: int) -> dict[int, str]:
        """step -> location of every checkpoint of ``seed``, in step order."""
        return {step: self.location(seed, step) for step in self.steps[seed]}


def known_families() -> list[str]:
    return [*RULE_NAMES, *TRANSFORMER_FAMILIES, *sorted(HYPERPARAMETERS)]


def check_family(name: str, where: str) -> None:
    if name not in known_families():
        raise ConfigError(
            f"{where}: unknown model family {name!r}; known families: "
            + ", ".join(known_families())
        )


def check_pattern(pattern: str, where: str) -> None:
    """The pattern uses exactly the fields {seed} and {step}, each at least once."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as error:
        raise ConfigError(f"{where}: {pattern!r} is not a valid pattern: {error}") from None
    unknown = names - set(FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: {pattern!r} has unknown fields {sorted(unknown)}; use {{seed}} and {{step}}"
        )
    missing = set(FIELDS) - names
    if missing:
        raise ConfigError(f"{where}: {pattern!r} must contain {{seed}} and {{step}}")


def discover_steps(pattern: str, seed: int, where: str) -> list[int]:
    """The steps of ``seed`` whose local path exists: ``{step}`` matched against the disk.

    The pattern's other parts are taken literally (glob characters escaped); a step is the
    integer the ``{step}`` field matched. Sorted; no match is a ConfigError naming the path.
    """
    parts = list(string.Formatter().parse(pattern))
    glob_parts, regex_parts = [], []
    for literal, name, spec, _ in parts:
        glob_parts.append(glob.escape(literal))
        regex_parts.append(re.escape(literal))
        if name == "seed":
            text = format(seed, spec or "")
            glob_parts.append(glob.escape(text))
            regex_parts.append(re.escape(text))
        elif name == "step":
            glob_parts.append("*")
            regex_parts.append(r"(\d+)")
    matcher = re.compile("".join(regex_parts))
    steps = set()
    for path in glob.glob("".join(glob_parts)):
        match = matcher.fullmatch(path)
        if match and len(set(match.groups())) == 1:  # every {step} in the path agrees
            steps.add(int(match.group(1)))
    if not steps:
        example = pattern.replace("{step", "{_step").format(seed=seed, _step="*")
        raise ConfigError(f"{where}: no checkpoint of seed {seed} matches {example!r}")
    return sorted(steps)


def check_local(path: str, where: str) -> None:
    """A local checkpoint exists and is a weights file or a directory holding one."""
    location = Path(path)
    if location.is_dir():
        if not any((location / name).is_file() for name in WEIGHT_FILES):
            raise ConfigError(
                f"{where}: {path} holds none of {', '.join(WEIGHT_FILES)} (a save_pretrained "
                "directory is expected)"
            )
    elif location.is_file():
        if location.suffix not in WEIGHT_SUFFIXES:
            raise ConfigError(
                f"{where}: {path} is not a weights file ({', '.join(WEIGHT_SUFFIXES)})"
            )
    else:
        raise ConfigError(f"{where}: checkpoint not found: {path}")


def check_evals(path: str, needed: list[str], where: str) -> tuple[str, ...]:
    """The evals table's columns besides seed and step; ``needed`` columns must be there.

    Reads only the header (CSV) or the schema (Parquet). Columns named like a weight
    metric are refused: the metrics come from the weights.
    """
    import pandas as pd  # only settings with evals pay for the import

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: evals file not found: {path}")
    try:
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(file).names)
        elif file.suffix == ".csv":
            columns = list(pd.read_csv(file, nrows=0).columns)
        else:
            raise ConfigError(f"{where}: {path} is neither .csv nor .parquet")
    except ConfigError:
        raise
    except Exception as error:  # the CSV parser and pyarrow raise many types
        raise ConfigError(f"{where}: cannot read {path}: {error}") from error
    present = ", ".join(columns)
    for column in [*FIELDS, *needed]:
        if column not in columns:
            raise ConfigError(
                f"{where}: {path} has no column {column!r}; columns present: {present}"
            )
    clash = sorted(set(columns) & {*METRIC_COLUMNS, *RESERVED})
    if clash:
        raise ConfigError(
            f"{where}: {path} has columns {clash} that the workflow writes itself (the weight "
            "metrics come from the checkpoints); rename them"
        )
    return tuple(c for c in columns if c not in FIELDS)


def build_series(
    entry: dict[str, Any], seeds: list[int], needed: list[str], where: str
) -> CheckpointSeries:
    """Validate a ``source: checkpoints`` setting's location and evals keys.

    needed: columns the setting reads that the weights do not give (the convergence
    column, features other than the 14 metrics): they must come from ``evals``.
    """
    given = [key for key in ("hub", "checkpoints") if key in entry]
    if len(given) != 1:
        raise ConfigError(
            f"{where}: give exactly one of hub (a Hugging Face Hub pattern) and checkpoints "
            f"(a local path pattern); got {given or 'neither'}"
        )
    key = given[0]
    pattern = entry[key]
    check_pattern(pattern, f"{where}.{key}")
    hub = key == "hub"
    if hub and "steps" not in entry:
        raise ConfigError(f"{where}.steps: required with hub (the Hub is not searched)")
    if "steps" in entry:
        steps = {seed: sorted(entry["steps"]) for seed in seeds}
    else:
        steps = {seed: discover_steps(pattern, seed, f"{where}.checkpoints") for seed in seeds}
    model = entry.get("model", "auto")
    check_family(model, f"{where}.model")
    model = None if model == "auto" else model
    patterns = {key: entry[key] for key in ("matrices", "biases") if key in entry}
    if patterns and model in HYPERPARAMETERS:
        raise ConfigError(
            f"{where}: {', '.join(patterns)} name tensors for a transformer or a bare weights "
            f"file; model {model!r} is a task, whose own model names them"
        )
    if not hub:
        for seed in seeds:
            for step in steps[seed]:
                check_local(pattern.format(seed=seed, step=step), f"{where}.checkpoints")
    evals = entry.get("evals")
    if evals is None and needed:
        raise ConfigError(
            f"{where}: columns {needed} are not weight metrics; they need an evals table "
            f"({where}.evals) with those columns"
        )
    eval_columns = () if evals is None else check_evals(evals, needed, f"{where}.evals")
    return CheckpointSeries(pattern, hub, steps, model, evals, eval_columns, patterns)
