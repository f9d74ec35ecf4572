"""What the states explain beyond one boundary tracking convergence (regression.json)."""

import numpy as np
import pandas as pd
import pytest
from planted import branching_runs, planted_runs

from trainmap.maps.detours import analyze_detours, convergence_times
from trainmap.maps.evidence import last_state_fraction, route_design, route_evidence

CONVERGENCE = {"column": "eval_accuracy", "threshold": 0.9}


def regression(planted, n_states: int) -> dict:
    states = planted.states[["seed", "step", "state"]]
    return analyze_detours(states, planted.trajectories, n_states, CONVERGENCE, 1e-3)[1]


def test_a_planted_detour_explains_convergence_out_of_sample():
    summary = regression(planted_runs(n_runs=40, detour=True), 3)
    assert summary["route_r2_cv"] > 0.7 and summary["route_f_pvalue"] < 1e-6
    assert summary["n_detours"] == 1


def test_a_planted_linear_path_explains_nothing_beyond_the_last_state():
    """Every run passes 0 -> 1 -> 2: the occupancy R² is high, and all of it comes from
    the share of the last state; the route is the same for every run."""
    summary = regression(planted_runs(n_runs=40, detour=False), 3)
    assert summary["r2"] > 0.8 and summary["r2_last_state"] > 0.8
    assert summary["route_r2"] == 0.0 and summary["route_r2_cv"] == 0.0
    assert summary["route_f_pvalue"] is None


def test_the_route_leaves_out_the_state_a_run_converges_in_and_what_follows():
    states = pd.DataFrame(
        {
            "seed": [0] * 6 + [1] * 6,
            "step": list(range(0, 60, 10)) * 2,
            "state": [0, 1, 1, 2, 2, 3] + [0, 0, 2, 2, 2, 2],
        }
    )
    trajectories = states.assign(eval_accuracy=[0, 0, 0, 0.95, 1, 1] + [0] * 6)
    times = convergence_times(trajectories, "eval_accuracy", 0.9)
    design = route_design(states, times, 4)
    # run 0 converges at step 30 in state 2: the route is {0, 1}; state 3 comes later
    assert design.loc[0].tolist() == [1, 1, 0, 0]
    # run 1 never converges: every state it visits
    assert design.loc[1].tolist() == [1, 0, 1, 0]
    assert last_state_fraction(states).tolist() == [pytest.approx(1 / 6), pytest.approx(4 / 6)]


def test_censored_runs_and_shared_routes_leave_the_route_regression_undetermined():
    planted = branching_runs()
    states = planted.states[["seed", "step", "state"]]
    times = convergence_times(planted.trajectories, "eval_accuracy", 0.9)
    result = route_evidence(states, times, 5)
    assert result["n_converged"] == int((~times["censored"]).sum()) == 24
    assert result["route_r2_cv"] > 0.5  # the slow side state, taken by half the runs
    one_run = route_evidence(states[states["seed"] == 10], times, 5)
    assert one_run["route_r2"] is None and np.isfinite(one_run["r2_last_state"])


def test_a_run_converging_after_the_hmms_checkpoints_keeps_its_whole_path():
    states = pd.DataFrame({"seed": 0, "step": [0, 10, 20], "state": [0, 1, 1]})
    times = pd.DataFrame({"convergence_step": [50], "censored": [False]}, index=[0])
    assert route_design(states, times, 3).loc[0].tolist() == [1, 1, 0]
