"""Bring-your-own runs: read and check a ``source: table`` file (CONTRACT.md).

A user's table has one row per (run, checkpoint): an integer ``seed`` column (or ``run``,
any hashable id, renamed to ``seed`` here), an integer ``step`` column, the feature
columns and the convergence column. Every problem raises ``TableError`` naming the file
and the column or value, before any job downstream reads the table.

``build_trajectories`` is the fan-in of a setting's runs (rule collect_trajectories).

In a CSV file a missing value (an empty cell, ``n/a``, ``NA``, ``null``, ...) is an
error: only an explicit ``nan``/``inf`` is a run's non-finite value (divergence). Parquet
cannot tell them apart (pandas writes NaN as null), so a null feature or convergence
value is read as NaN, and counted in the log; a null run id or step is an error.
"""

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainmap.io.biases import bias_free_cells
from trainmap.io.divergence import loss_columns
from trainmap.io.files import plain, read_parquet

log = logging.getLogger(__name__)

# CSV cells read as NaN: only NaN spelled out. pandas would also read '', 'n/a', 'NA',
# 'null', ... as NaN, which would make a missing value look like a diverged run.
NAN_TOKENS = ["nan", "NaN", "NAN", "-nan", "-NaN", "+nan"]
MISSING_MARKERS = {"", "n/a", "na", "nan/a", "null", "none", "#n/a", "#na", "-", "?", "<na>"}


class TableError(ValueError):
    """A run table the workflow cannot use; the message names the file and the column.

    A ``ValueError`` like ``trainmap.errors.ConfigError``; defined here so that reading a
    table does not import the task registry (and torch).
    """


def load_run_table(path: str | Path, features: list[str], convergence_column: str) -> pd.DataFrame:
    """One row per (seed, step), sorted: ``seed, step, <features>, <convergence>, diverged``.

    ``diverged`` (bool, constant within a run) is True for every row of a run that has a
    NaN or infinite value in any feature at any step; such runs are kept here and left
    out (and reported) when sequences are prepared. The bias metrics of a run whose model
    has no biases (NaN at every checkpoint, trainmap.io.biases) do not count.
    """
    path = Path(path)
    table, nulls = _read(path)
    present = ", ".join(map(str, table.columns))
    if "seed" not in table.columns and "run" not in table.columns:
        raise TableError(
            f"{path}: missing run id column 'seed' (integer) or 'run'; columns present: {present}"
        )
    run_column = "seed" if "seed" in table.columns else "run"  # seed wins if both
    value_columns = list(dict.fromkeys([*features, convergence_column]))
    for column in ["step", *value_columns]:
        if column not in table.columns:
            raise TableError(f"{path}: missing column {column!r}; columns present: {present}")
    if table.empty:
        raise TableError(f"{path}: the table has no rows")
    for column in (run_column, "step"):
        if column in nulls and column != "run":  # a missing 'run' id: _run_ids says so
            raise TableError(
                f"{path}: column {column!r} has a missing value (null, data row "
                f"{nulls[column] + 1}); every row needs its run and step"
            )
    for column in value_columns:
        if column in nulls:
            log.warning("%s: column %r has %d null value(s), read as NaN (a diverged run)",
                        path, column, int(table[column].isna().sum()))  # fmt: skip
    out = pd.DataFrame({"seed": _run_ids(table[run_column], path, run_column)})
    out["step"] = _integers(table["step"], path, "step")
    for column in value_columns:
        out[column] = _numbers(table[column], path, column)
    _check_unique(out, path, run_column)
    finite = (np.isfinite(out[features].to_numpy()) | bias_free_cells(out, features)).all(axis=1)
    out["diverged"] = ~pd.Series(finite, index=out.index).groupby(out["seed"]).transform("all")
    return out.sort_values(["seed", "step"], kind="stable").reset_index(drop=True)


MISSING_HINT = (
    "every cell needs a value: write a diverged run's values as nan or inf (pandas: "
    "to_csv(na_rep='nan')), or drop the rows that were not logged"
)

ID_MISSING_HINT = (
    "every row needs its run id and step: fill the cell, or drop the row if it was not logged"
)


def read_table(path: str | Path) -> pd.DataFrame:
    """A ``.parquet`` or ``.csv`` table; an unreadable one raises TableError naming it."""
    return _read(Path(path))[0]


PARQUET_MAGIC = b"PAR1"  # a Parquet file starts (and ends) with these bytes


def table_format(path: Path) -> str:
    """``parquet`` or ``csv``, from the file's first bytes; the suffix must agree.

    A Parquet file named ``.csv`` used to reach the CSV parser ("Error tokenizing data")
    and a CSV named ``.parquet`` pyarrow's "magic bytes not found": both are named here.
    """
    if path.is_dir():
        raise TableError(f"{path}: is a directory; a table is one .parquet or .csv file")
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as f:
            head = f.read(len(PARQUET_MAGIC))
    except FileNotFoundError:
        if suffix in (".parquet", ".csv"):
            raise TableError(f"{path}: no such file") from None
        head = b""
    except OSError as error:
        raise TableError(f"{path}: cannot read the table: {error}") from None
    content = "parquet" if head == PARQUET_MAGIC else "csv"
    if suffix not in (".parquet", ".csv"):
        hint = f" (its content is {content.capitalize()}: name it .{content})" if head else ""
        raise TableError(
            f"{path}: unknown table format {path.suffix!r}; use one of .parquet, .csv{hint}"
        )
    if suffix == ".csv" and content == "parquet":
        raise TableError(
            f"{path}: is a Parquet file (it starts with {PARQUET_MAGIC.decode()}) but is named "
            ".csv: rename it to .parquet"
        )
    if suffix == ".parquet" and content == "csv" and head:
        raise TableError(
            f"{path}: is named .parquet but is not a Parquet file (it does not start with "
            f"{PARQUET_MAGIC.decode()}); if it is a CSV text, rename it to .csv"
        )
    return content


def _read(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The table and, per column with null cells (Parquet), the first null's row."""
    content = table_format(path)
    try:
        if content == "csv":
            table = pd.read_csv(path, keep_default_na=False, na_values=NAN_TOKENS)
            return table, {}
        arrow = pq.read_table(path)
        nulls = {
            name: pc.index(pc.is_null(column), True).as_py()
            for name, column in zip(arrow.column_names, arrow.columns, strict=True)
            if column.null_count
        }
        return arrow.to_pandas(), nulls
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException) as error:
        # pyarrow and the CSV parser raise many types; none should reach the user bare
        raise TableError(f"{path}: cannot read the table: {error}") from error


def _first_bad(values: pd.Series, bad: np.ndarray) -> str:
    index = int(np.flatnonzero(bad)[0])
    return f"{plain(values.iloc[index])!r} (data row {index + 1})"


def _run_ids(values: pd.Series, path: Path, column: str) -> pd.Series:
    """``seed`` must hold integers; ``run`` any hashable id, but never a missing one."""
    if column == "seed":
        return _integers(values, path, column)
    missing = values.isna().to_numpy()
    if missing.any():
        raise TableError(f"{path}: column 'run' has a missing id at {_first_bad(values, missing)}")
    try:
        values.map(hash)
    except TypeError:
        raise TableError(f"{path}: column 'run' holds unhashable ids") from None
    return values.reset_index(drop=True)


def _integers(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Integer column as int64; floats are accepted only when every value is whole."""
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("int64").reset_index(drop=True)
    numbers = _numbers(values, path, column)
    array = numbers.to_numpy()
    # beyond 2**53 a float no longer holds every integer (and 1e308 overflows int64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(array) | (array != np.round(array)) | (np.abs(array) > 2.0**53)
    if bad.any():
        raise TableError(
            f"{path}: column {column!r} must hold integers; found {_first_bad(values, bad)}"
        )
    return numbers.astype("int64")


def _numbers(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Float64 column; NaN/inf stay (they mark divergence), text and booleans do not."""
    if pd.api.types.is_bool_dtype(values):
        raise TableError(f"{path}: column {column!r} must be numeric, not boolean")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    if bad.any():
        first = values.iloc[int(np.flatnonzero(bad)[0])]
        if isinstance(first, str) and first.strip().lower() in MISSING_MARKERS:
            # a run id or step is no measurement: nan is no way to write it
            hint = ID_MISSING_HINT if column in ("seed", "step") else MISSING_HINT
            raise TableError(
                f"{path}: column {column!r} has a missing value {_first_bad(values, bad)}; " + hint
            )
        raise TableError(
            f"{path}: column {column!r} must be numeric; found {_first_bad(values, bad)}"
        )
    return numbers.astype("float64").reset_index(drop=True)


def _check_unique(table: pd.DataFrame, path: Path, run_column: str) -> None:
    duplicated = table.duplicated(["seed", "step"], keep=False).to_numpy()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated)[0])
        run, step = (plain(table[c].iloc[first]) for c in ("seed", "step"))
        raise TableError(
            f"{path}: duplicate ({run_column}, step) rows, e.g. {run_column}={run!r} "
            f"step={step!r} ({int(duplicated.sum())} rows in duplicate pairs)"
        )


# ``source: runs``: what trainmap.record.Recorder writes, one directory per seed.
RUN_FILE = "metrics.parquet"
SEED_DIRECTORY = re.compile(r"seed(\d+)")


def find_recorded_runs(directory: str | Path, where: str = "runs") -> list[Path]:
    """``<directory>/seed<seed>/metrics.parquet`` of every recorded seed, sorted by seed.

    A missing directory, one without any run, and a ``seed*`` folder whose name is no
    ``seed<integer>`` raise TableError naming them (``where``: the config key).
    """
    directory = Path(directory)
    if not directory.is_dir():
        inside = "" if directory.is_absolute() else f" in the working directory {Path.cwd()}"
        raise TableError(
            f"{where}: {directory}: no such directory{inside} (runs recorded with "
            "trainmap.record.Recorder live in <dir>/seed<seed>/metrics.parquet)"
        )
    found = {}
    for path in directory.glob(f"seed*/{RUN_FILE}"):
        match = SEED_DIRECTORY.fullmatch(path.parent.name)
        if match is None:
            raise TableError(
                f"{where}: {path}: folder {path.parent.name!r} is not named "
                "seed<integer>; rename it or move it out of the runs directory"
            )
        found[int(match.group(1))] = path
    if not found:
        raise TableError(
            f"{where}: {directory}: no seed<seed>/{RUN_FILE} in it; record runs "
            "with trainmap.record.Recorder(directory, seed=..., model=...)"
        )
    return [found[seed] for seed in sorted(found)]


def load_recorded_runs(
    paths: list[str | Path], features: list[str], convergence_column: str
) -> pd.DataFrame:
    """Every recorded run, each checked as a ``source: table`` file (``load_run_table``),
    its ``seed`` column equal to its folder's seed. ``diverged`` is True for every row of
    a run with a non-finite feature, and from the row its own file marks diverged on (the
    Recorder's rule: a loss that was finite turned non-finite). The file's loss columns
    come along (numeric ones), so that the HMM stage can name the loss and step."""
    runs = []
    for path in map(Path, paths):
        table = load_run_table(path, features, convergence_column)
        match = SEED_DIRECTORY.fullmatch(path.parent.name)
        seed = int(match.group(1)) if match else None
        if seed is not None and not (table["seed"] == seed).all():
            other = table.loc[table["seed"] != seed, "seed"].iloc[0]
            raise TableError(f"{path}: holds rows of seed {other}, but its folder is seed{seed}")
        runs.append(_with_recorded_flags(table, read_table(path)))
    table = pd.concat(runs, ignore_index=True)
    return table.sort_values(["seed", "step"], kind="stable").reset_index(drop=True)


def _with_recorded_flags(table: pd.DataFrame, recorded: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one run, sorted by step) with the recorded file's per-row ``diverged``
    flags and its numeric loss columns, matched by step."""
    by_step = recorded.drop_duplicates("step").set_index("step")
    steps = table["step"]
    if "diverged" in by_step.columns:
        flags = by_step["diverged"].astype("boolean").fillna(False).astype(bool)
        table["diverged"] = table["diverged"] | steps.map(flags).fillna(False).astype(bool)
    for column in loss_columns(by_step.columns):
        if column not in table.columns and pd.api.types.is_numeric_dtype(by_step[column]):
            table[column] = steps.map(by_step[column].astype("float64")).to_numpy()
    return table


# Fan-in of a setting's runs into one trajectories table (rule collect_trajectories).


def collect_runs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate per-seed metrics tables, sorted by seed and step."""
    tables = [read_parquet(path) for path in sorted(paths)]
    table = pd.concat(tables, ignore_index=True)
    return table.sort_values(["seed", "step"], kind="stable").reset_index(drop=True)


def build_trajectories(
    source: str, paths: Sequence[str | Path], features: list[str], convergence: dict
) -> pd.DataFrame:
    """The setting's trajectories: trained runs, a user's table (source: table) or the
    runs a user recorded with trainmap.record (source: runs)."""
    if source == "runs":
        return load_recorded_runs(list(paths), features, convergence["column"])
    if source == "table":
        (path,) = paths
        return load_run_table(path, features, convergence["column"])
    return collect_runs(paths)
