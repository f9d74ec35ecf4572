"""What ``fit_detour_regression`` writes for a setting without a regression.

A checkpoint series without evaluations (``source: checkpoints`` with no ``convergence``)
has no convergence times, and a setting with one decoded run (one seed, ``hmm.selection:
time``) has nothing to compare it with: the regression of convergence time on occupancy
needs many runs. Either way nothing is regressed and no state can be a detour or a dead
end. The map and the decoded states stand on their own; this writes the same three
files as ``trainmap.maps.detours.analyze_detours`` with the regression left empty and the
reason stated (``analyze_runs`` picks the path), so every downstream rule runs unchanged:

- detours.csv: one row per state with ``runs_visiting`` filled in; coefficients, standard
  errors, p-values and ``converged_runs_visiting`` empty (NaN), ``is_detour`` false,
  ``kind`` empty;
- regression.json: the keys of a fitted one (the same builders,
  ``trainmap.maps.detours.regression_summary`` and ``run_summary``), with ``r2``,
  ``f_pvalue``, ``n_censored``, the convergence statistics and ``convergence`` null,
  ``significant`` false, ``reason`` saying why, ``dissimilarity`` computed as usual (it
  needs no convergence);
- convergence.parquet: per run, ``convergence_step`` NaN, ``censored`` false, the run's
  ``last_step``, ``measured`` false (no convergence time), ``in_regression`` (here:
  decoded) and the occupancy fractions.
"""

import numpy as np
import pandas as pd

from trainmap.maps.detours import (
    TABLE_COLUMNS,
    analyze_detours,
    occupancy_fractions,
    regression_summary,
    run_summary,
    runs_visiting,
)

REASON = (
    "no convergence column (a checkpoint series without evals): no convergence times, so "
    "no detour regression; the map and the decoded states are drawn without it"
)
ONE_RUN = (
    "one run: no detour regression (it regresses convergence time on state occupancy "
    "over many runs); the map of the run's phases stands on its own"
)


def analyze_runs(
    states: pd.DataFrame,
    trajectories: pd.DataFrame,
    n_states: int,
    convergence: dict,
    alpha: float,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """What ``fit_detour_regression`` writes: ``analyze_detours`` with a convergence
    column and more than one decoded run, else ``describe_without_regression`` with the
    reason (``ONE_RUN`` first: one run has nothing to regress even with convergence)."""
    if states["seed"].nunique() == 1:
        return describe_without_regression(states, trajectories, n_states, alpha, ONE_RUN)
    if not convergence:
        return describe_without_regression(states, trajectories, n_states, alpha)
    return analyze_detours(states, trajectories, n_states, convergence, alpha)


def describe_without_regression(
    states: pd.DataFrame,
    trajectories: pd.DataFrame,
    n_states: int,
    alpha: float,
    reason: str = REASON,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The per-state table, the summary and the per-run table (see the module docstring).

    states: ``seed, step, state`` (Viterbi paths); trajectories: every run, including
    those the HMM excluded; reason: regression.json's ``reason``.
    """
    occupancy = occupancy_fractions(states, n_states)
    table = pd.DataFrame({column: np.nan for column in TABLE_COLUMNS}, index=range(n_states))
    table["state"] = np.arange(n_states)
    table["runs_visiting"] = runs_visiting(states, n_states)
    table["is_detour"] = False
    table["kind"] = ""
    last = trajectories.groupby("seed")["step"].max()
    excluded = last.index.difference(occupancy.index)
    summary = regression_summary(len(occupancy), alpha, reason)
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
    runs = pd.DataFrame(
        {"convergence_step": np.nan, "censored": False, "last_step": last, "measured": False}
    )
    runs["in_regression"] = runs.index.isin(occupancy.index)
    runs = runs.join(occupancy.add_prefix("state")).rename_axis("seed").reset_index()
    return table, summary, runs
