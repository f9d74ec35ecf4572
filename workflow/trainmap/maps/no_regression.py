"""What ``fit_detour_regression`` writes for a setting without a convergence column.

A checkpoint series without evaluations (``source: checkpoints`` with no ``convergence``)
has no convergence times, so there is nothing to regress and no state can be a detour or a
dead end. The map and the decoded states stand on their own; this writes the same three
files as ``trainmap.maps.detours.analyze_detours`` with the regression left empty and the
reason stated, so every downstream rule runs unchanged:

- detours.csv: one row per state with ``runs_visiting`` filled in; coefficients, standard
  errors, p-values and ``converged_runs_visiting`` empty (NaN), ``is_detour`` false,
  ``kind`` empty;
- regression.json: the keys of a fitted one (the same builders,
  ``trainmap.maps.detours.regression_summary`` and ``run_summary``), with ``r2``,
  ``f_pvalue``, ``n_censored``, the convergence statistics and ``convergence`` null,
  ``significant`` false, ``reason`` saying why, ``dissimilarity`` computed as usual (it
  needs no convergence);
- convergence.parquet: per run, ``convergence_step`` NaN, ``censored`` false, the run's
  ``last_step``, ``in_regression`` (here: decoded) and the occupancy fractions.
"""

import numpy as np
import pandas as pd

from trainmap.maps.detours import (
    TABLE_COLUMNS,
    occupancy_fractions,
    regression_summary,
    run_summary,
    runs_visiting,
)

REASON = (
    "no convergence column (a checkpoint series without evals): no convergence times, so "
    "no detour regression; the map and the decoded states are drawn without it"
)


def describe_without_regression(
    states: pd.DataFrame, trajectories: pd.DataFrame, n_states: int, alpha: float
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The per-state table, the summary and the per-run table (see the module docstring).

    states: ``seed, step, state`` (Viterbi paths); trajectories: every run, including
    those the HMM excluded.
    """
    occupancy = occupancy_fractions(states, n_states)
    table = pd.DataFrame({column: np.nan for column in TABLE_COLUMNS}, index=range(n_states))
    table["state"] = np.arange(n_states)
    table["runs_visiting"] = runs_visiting(states, n_states)
    table["is_detour"] = False
    table["kind"] = ""
    last = trajectories.groupby("seed")["step"].max()
    excluded = last.index.difference(occupancy.index)
    summary = regression_summary(len(occupancy), alpha, REASON)
    summary.update(
        run_summary(
            table,
            occupancy,
            states,
            censored_runs=[],
            excluded_runs=excluded.tolist(),
            unmeasured_runs=[],
            convergence=None,
        )
    )
    runs = pd.DataFrame({"convergence_step": np.nan, "censored": False, "last_step": last})
    runs["in_regression"] = runs.index.isin(occupancy.index)
    runs = runs.join(occupancy.add_prefix("state")).rename_axis("seed").reset_index()
    return table, summary, runs
