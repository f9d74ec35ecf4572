"""``trainmap check``'s look at the data: a ``source: table`` file or a ``source: runs``
folder, read and prepared as the workflow's jobs will read them.

Everything the jobs would refuse before fitting is a problem here (a missing or empty
folder, a convergence column no run logs, runs with one checkpoint, a validation split too
small, features never measured, a feature list naming the bias metrics of a bias-free
model); everything they would only warn about is a warning (runs on different step
grids, seed folders without a metrics file, a column only some seeds logged, more HMM
parameters than fit rows), each naming the seeds. Warnings are the jobs' own: the
``trainmap`` log records at WARNING level while the data are read.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trainmap.config.settings import Setting
from trainmap.errors import ConfigError
from trainmap.function_space.features import pc_features
from trainmap.hmm.adequacy import parameter_note
from trainmap.hmm.options import sequence_options
from trainmap.hmm.sequences import SequenceError, prepare_sequences
from trainmap.hmm.split import check_resamples
from trainmap.io.tables import (
    RUN_FILE,
    SEED_DIRECTORY,
    TableError,
    find_recorded_runs,
    load_recorded_runs,
    load_run_table,
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _logged_warnings() -> Iterator[list[str]]:
    """The ``trainmap`` log's warnings while the block runs (the jobs' own warnings)."""
    logger = logging.getLogger("trainmap")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def data_problems(setting: Setting) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a table or runs setting's data, each ``key.path: what``."""
    if setting.source not in ("table", "runs"):
        return [], []
    where = f"settings.{setting.name}"
    problems: list[str] = []
    with _logged_warnings() as logged:
        try:
            if setting.source == "runs":
                notes = _read_runs(setting, problems)
            else:
                table = load_run_table(setting.table, setting.features, _column(setting))
                notes = _prepare(setting, table, problems)
        except TableError as error:
            key = "runs" if setting.source == "runs" else "table"
            text = str(error)
            return [text if text.startswith(where) else f"{where}.{key}: {text}"], []
    warnings = [f"{where}: {m}" for m in dict.fromkeys(logged)]
    return problems, warnings + [f"{where}: {n}" for n in notes if f"{where}: {n}" not in warnings]


def _column(setting: Setting) -> str:
    return setting.convergence["column"]


def _prepare(setting: Setting, table, problems: list[str]) -> list[str]:
    """Prepare the sequences as the job will; a refusal becomes a problem. Returns the
    notes the map stage would add (parameters against fit rows)."""
    hmm = setting.hmm
    options = sequence_options(hmm)
    try:
        prepared = prepare_sequences(
            table, setting.features, features_given=setting.features_given, **options
        )
        rows = prepared.table.groupby("seed").size().to_dict()
        check_resamples(rows, setting.stability, hmm, f"settings.{setting.name}")
    except SequenceError as error:
        problems.append(f"settings.{setting.name}: {error}")
        return []
    except ConfigError as error:  # resamples the runs cannot give
        problems.append(str(error))
        return []
    n_fit = int((prepared.table["split"] == "fit").sum())
    for folds in ("fold", "block"):  # kfold, time: each fold fits on the other folds' rows
        if folds in prepared.table:
            n_fit -= int(prepared.table.groupby(folds).size().max())
    note = parameter_note(hmm["states"], len(prepared.features), n_fit, hmm["covariance"])
    return [note] if note else []


def _read_runs(setting: Setting, problems: list[str]) -> list[str]:
    """A runs folder: its seed folders, the columns each run logs, then the runs read
    and prepared. Returns notes to show as warnings."""
    where = f"settings.{setting.name}.runs"
    paths = find_recorded_runs(setting.runs, where)
    notes = []
    empty = _seed_folders_without_file(Path(setting.runs))
    if empty:
        notes.append(
            f"seed folder(s) {', '.join(empty)} of {setting.runs} have no {RUN_FILE}: those "
            "seeds are not mapped (a job that never logged, or a file moved away)"
        )
    columns = {_seed_of(path): _columns(path) for path in paths}
    # pc1, pc2, ...: function-space components, computed by the workflow from the probe
    # losses (not in the metrics files): the runs are read without them and not prepared.
    pcs = pc_features(setting.features)
    features = [f for f in setting.features if f not in pcs]
    missing = _columns_missing(columns, [_column(setting), *features])
    if missing:
        problems.extend(f"settings.{setting.name}.{m}" for m in missing)
        return notes
    partial = _logged_by_some(columns)
    if partial:
        notes.append(f"column(s) logged by only some seeds: {partial}")
    table = load_recorded_runs(paths, features, _column(setting))
    return notes + ([] if pcs else _prepare(setting, table, problems))


def _seed_folders_without_file(directory: Path) -> list[str]:
    return sorted(
        (p.name for p in directory.glob("seed*") if p.is_dir() and SEED_DIRECTORY.fullmatch(p.name)
         and not (p / RUN_FILE).exists()),
        key=lambda name: int(name.removeprefix("seed")),
    )  # fmt: skip


def _seed_of(path: Path) -> int:
    return int(SEED_DIRECTORY.fullmatch(path.parent.name).group(1))


def _columns(path: Path) -> set[str]:
    """A run file's column names, from its Parquet footer (no data read)."""
    try:
        return set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as error:
        raise TableError(f"{path}: cannot read the table: {error}") from error


def _columns_missing(columns: dict[int, set[str]], needed: list[str]) -> list[str]:
    """``convergence.column: ...`` / ``features: ...`` for a needed column that no run, or
    only some runs, log."""
    logged = sorted(set().union(*columns.values()) - {"seed", "step", "diverged"})
    out = []
    for i, name in enumerate(dict.fromkeys(needed)):
        key = "convergence.column" if i == 0 else "features"
        having = sorted(seed for seed, names in columns.items() if name in names)
        if not having:
            out.append(f"{key}: no run logs {name!r}; the runs log: {', '.join(logged)}")
        elif len(having) < len(columns):
            lacking = sorted(set(columns) - set(having))
            out.append(
                f"{key}: {name!r} is logged by seed(s) {_listed(having)} only; seed(s) "
                f"{_listed(lacking)} lack it"
            )
    return out


def _logged_by_some(columns: dict[int, set[str]]) -> str:
    """``lr (seed(s) 0)`` for every column some seeds log and others do not."""
    everywhere = set.intersection(*columns.values())
    parts = []
    for name in sorted(set().union(*columns.values()) - everywhere):
        having = sorted(seed for seed, names in columns.items() if name in names)
        parts.append(f"{name} (seed(s) {_listed(having)})")
    return "; ".join(parts)


def _listed(items: list, limit: int = 8) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (", ..." if len(items) > limit else "")
