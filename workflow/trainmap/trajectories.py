"""Fan-in of a setting's runs into one trajectories table (CONTRACT.md)."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from trainmap.io import read_parquet
from trainmap.tables import load_recorded_runs, load_run_table


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
