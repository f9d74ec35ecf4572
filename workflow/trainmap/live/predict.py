"""``trainmap predict --map results/<setting> (--runs DIR | --table F) [--out F]``.

Writes ``predictions.csv``: one row per run and checkpoint, ``seed, step, state,
p_detour, p_dead_end, predicted_convergence_step, low, high, converged_at``, each row
filtered on the map from that run's checkpoints up to it (what a live Recorder would have
logged), for finished runs and runs still training alike. Every run is checked before
any is predicted: the map's features in its columns, its steps increasing.
"""

import argparse
import sys

import numpy as np
import pandas as pd

from trainmap.errors import CorruptFileError, LiveMapError
from trainmap.io.atomic import atomic_path
from trainmap.io.files import read_parquet
from trainmap.io.tables import TableError, find_recorded_runs, read_table
from trainmap.live.livemap import LiveMap

COLUMNS = ("seed", "step", "state", "p_detour", "p_dead_end", "predicted_convergence_step",
           "low", "high", "converged_at")  # fmt: skip


def read_runs(runs: str | None, table: str | None) -> dict[object, pd.DataFrame]:
    """seed -> its rows in file order, from a Recorder's runs directory or one table
    (``seed`` or ``run`` column)."""
    if runs is not None:
        out = {}
        for path in find_recorded_runs(runs, "--runs"):
            frame = read_parquet(path)
            out[int(path.parent.name.removeprefix("seed"))] = frame
        return out
    frame = read_table(table)
    column = "seed" if "seed" in frame.columns else "run" if "run" in frame.columns else None
    if column is None or "step" not in frame.columns:
        raise LiveMapError(f"{table}: needs a seed (or run) and a step column; it has "
                           f"{', '.join(map(str, frame.columns))}")  # fmt: skip
    return {seed: rows for seed, rows in frame.groupby(column, sort=True)}


def check_runs(live: LiveMap, runs: dict[object, pd.DataFrame]) -> None:
    """LiveMapError for the first run without the map's features or whose steps do not
    increase (before anything is computed)."""
    for seed, rows in runs.items():
        live.check_columns(rows.columns, f"seed {seed}")
        steps = rows["step"].to_numpy()
        back = np.flatnonzero(np.diff(steps) <= 0)
        if back.size:
            i = back[0]
            raise LiveMapError(f"seed {seed}: step {steps[i + 1]} after step {steps[i]}: a run's "
                               "steps must increase (rows in training order)")  # fmt: skip


def predict_runs(live: LiveMap, runs: dict[object, pd.DataFrame]) -> pd.DataFrame:
    """The predictions table (``COLUMNS``) of every run, rows in step order."""
    check_runs(live, runs)
    rows = []
    for seed, frame in runs.items():
        run = live.run(seed)
        for record in frame.to_dict("records"):
            p = run.update(int(record["step"]), record)
            rows.append((seed, p.step, p.state, p.p_detour, p.p_dead_end,
                         p.predicted_convergence_step, p.low, p.high, p.converged_at))  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("predicted_convergence_step", "low", "high", "converged_at"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["converged_at"] = table["converged_at"].astype("Int64")
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trainmap predict", description=__doc__.split("\n")[0])
    parser.add_argument("--map", required=True, help="results/<setting> (with its live.json)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", help="a Recorder's runs directory (<dir>/seed<seed>/...)")
    source.add_argument("--table", help="a .parquet or .csv with seed (or run), step, features")
    parser.add_argument("--out", default="predictions.csv", help="default: predictions.csv")
    args = parser.parse_args(argv)
    try:
        live = LiveMap.load(args.map)
        table = predict_runs(live, read_runs(args.runs, args.table))
    except (LiveMapError, TableError, CorruptFileError) as error:
        print(f"trainmap predict: {error}", file=sys.stderr)
        return 1
    with atomic_path(args.out) as tmp:  # a killed command leaves no half-written table
        table.to_csv(tmp, index=False)
    print(f"{args.out}: {len(table)} rows, {table['seed'].nunique()} runs")
    return 0
