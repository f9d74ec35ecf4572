"""A run with no finite value in its convergence column: left out of the regression, listed."""

import logging

import numpy as np
from planted import THRESHOLD, planted_runs

from trainmap.figures.summary import headline
from trainmap.maps.detours import analyze_detours, convergence_times

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def test_all_nan_convergence_run_is_left_out_and_listed_not_censored(caplog):
    planted = planted_runs(n_runs=12)
    trajectories = planted.trajectories.copy()
    trajectories.loc[trajectories["seed"] == 5, "eval_accuracy"] = np.nan
    times = convergence_times(trajectories, "eval_accuracy", THRESHOLD)
    assert times["measured"].tolist() == [seed != 5 for seed in range(12)]
    with caplog.at_level(logging.WARNING):
        _, summary, runs = analyze_detours(planted.states, trajectories, 3, CONVERGENCE, 0.5)
    assert summary["unmeasured_runs"] == [5] and summary["n_runs"] == 11
    assert summary["n_censored"] == 0 and 5 not in summary["excluded_runs"]
    assert not runs.set_index("seed").loc[5, "in_regression"]
    assert "run(s) [5] left out of the detour regression: no finite eval_accuracy" in caplog.text
    # The same runs without run 5 at all give the same regression.
    kept = trajectories[trajectories["seed"] != 5]
    _, without, _ = analyze_detours(
        planted.states[planted.states["seed"] != 5], kept, 3, CONVERGENCE, 0.5
    )
    assert summary["r2"] == without["r2"] and summary["f_pvalue"] == without["f_pvalue"]


def test_a_partly_nan_run_still_counts():
    planted = planted_runs(n_runs=12)
    trajectories = planted.trajectories.copy()
    first_rows = trajectories.index[trajectories["seed"] == 5][:3]
    trajectories.loc[first_rows, "eval_accuracy"] = np.nan
    _, summary, _ = analyze_detours(planted.states, trajectories, 3, CONVERGENCE, 0.5)
    assert summary["unmeasured_runs"] == [] and summary["n_runs"] == 12


def test_summary_row_names_the_left_out_runs():
    planted = planted_runs(n_runs=12)
    trajectories = planted.trajectories.copy()
    trajectories.loc[trajectories["seed"] == 5, "eval_accuracy"] = np.nan
    table, summary, _ = analyze_detours(planted.states, trajectories, 3, CONVERGENCE, 0.5)
    training_map = {"n_states": 3, "forking": False}
    assert (
        "left out, no convergence value: runs [5]" in headline(training_map, table, summary)["note"]
    )
