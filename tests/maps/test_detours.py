"""Convergence times, the detour regression and its bad inputs (trainmap.maps.detours)."""

import numpy as np
import pandas as pd
import pytest
from planted import THRESHOLD, branching_runs, paths_table, planted_runs

from trainmap.maps.detours import (
    TABLE_COLUMNS,
    analyze_detours,
    convergence_times,
    fit_detour_regression,
    occupancy_fractions,
    read_detour_table,
    trajectory_dissimilarity,
)

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def times(steps: list[int], censored: list[bool] | None = None) -> pd.DataFrame:
    censored = censored or [False] * len(steps)
    return pd.DataFrame(
        {"convergence_step": steps, "censored": censored, "last_step": max(steps)},
        index=pd.Index(range(len(steps)), name="seed"),
    )


def test_planted_detour_is_the_only_detour():
    planted = planted_runs()
    table, summary, runs = analyze_detours(
        planted.states, planted.trajectories, 3, CONVERGENCE, 0.001
    )
    assert table["is_detour"].tolist() == [False, True, False]
    assert table["kind"].tolist() == ["", "detour", ""]
    assert table["converged_runs_visiting"].tolist() == [24, 12, 24]
    assert summary["significant"] is True and summary["reason"] is None
    assert summary["r2"] > 0.9
    assert summary["f_pvalue"] < 1e-10
    assert summary["n_runs"] == 24 and summary["n_censored"] == 0 and summary["n_detours"] == 1
    assert table["runs_visiting"].tolist() == [24, 12, 24]
    detour = table.loc[1]
    assert detour["coefficient"] > 0 and detour["p_value"] < 0.001
    # Staying in the detour state delays convergence the most; the final state the least.
    assert table["coefficient"].idxmax() == 1 and table["coefficient"].idxmin() == 2
    assert table["convergence_if_stayed"].tolist() == pytest.approx(
        (table["coefficient"] + summary["mean_convergence"]).tolist()
    )
    assert set(runs.columns) >= {"seed", "convergence_step", "censored", "state0", "state2"}


def test_detours_are_decided_over_converged_runs_and_the_censored_branch_is_a_dead_end():
    """Censored runs branch off to state 4 and skip the main road 0 -> 1 -> 2 that every
    converged run takes; half the converged runs also pass the slow side state 3."""
    planted = branching_runs()
    table, summary, _ = analyze_detours(planted.states, planted.trajectories, 5, CONVERGENCE, 0.001)
    assert summary["significant"] is True and summary["n_censored"] == 8
    assert table["runs_visiting"].tolist() == [32, 24, 24, 12, 8]
    assert table["converged_runs_visiting"].tolist() == [24, 24, 24, 12, 0]
    assert table["kind"].tolist() == ["", "", "", "detour", "dead_end"]
    assert table["is_detour"].tolist() == [False, False, False, True, False]
    assert summary["n_detours"] == 1 and summary["n_dead_ends"] == 1
    # What made the main road a "detour" before: positive delays, skipped by some runs.
    assert table.loc[1, "coefficient"] > 0 and table.loc[1, "runs_visiting"] < 32
    assert table.loc[4, "coefficient"] > 0 and table.loc[3, "p_value"] < 0.001
    # coefficient_sd: the coefficient in SDs of convergence time (the paper's Table 2).
    steps = analyze_detours(planted.states, planted.trajectories, 5, CONVERGENCE, 0.001)[2]
    sd = steps["convergence_step"].std(ddof=1)
    assert summary["sd_convergence"] == pytest.approx(sd)
    np.testing.assert_allclose(table["coefficient_sd"], table["coefficient"] / sd, rtol=1e-12)
    assert list(table.columns) == list(TABLE_COLUMNS)


def test_dead_ends_are_marked_even_when_the_regression_is_not_interpretable():
    states = paths_table({0: [0, 1, 1], 1: [0, 1, 1], 2: [0, 2, 2]})
    conv = times([20, 20, 30], censored=[False, False, True])
    table, summary = fit_detour_regression(occupancy_fractions(states, 3), conv, 0.05)
    assert summary["reason"] is not None and summary["r2"] is None
    assert table["kind"].tolist() == ["", "", "dead_end"] and not table["is_detour"].any()


def test_detour_table_round_trips_through_csv(tmp_path):
    planted = branching_runs()
    table, _, _ = analyze_detours(planted.states, planted.trajectories, 5, CONVERGENCE, 0.001)
    table.to_csv(tmp_path / "detours.csv", index=False)
    back = read_detour_table(tmp_path / "detours.csv")
    assert back["kind"].tolist() == table["kind"].tolist()
    assert back["is_detour"].tolist() == table["is_detour"].tolist()


def test_linear_path_has_no_detours():
    planted = planted_runs(detour=False)
    table, summary, _ = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.001)
    assert not table["is_detour"].any()
    assert table["runs_visiting"].tolist() == [24, 24, 24]
    assert summary["significant"] is True  # time in states 0 and 1 still explains convergence


def test_regression_matches_least_squares_on_the_centred_outcome():
    rng = np.random.default_rng(3)
    occupancy = pd.DataFrame(rng.dirichlet(np.ones(3), size=12))
    y = rng.normal(100, 20, size=12).round()
    table, summary = fit_detour_regression(occupancy, times(y.astype(int).tolist()), 0.05)
    coef, *_ = np.linalg.lstsq(occupancy.to_numpy(), y - y.mean(), rcond=None)
    np.testing.assert_allclose(table["coefficient"], coef, rtol=1e-9)
    residuals = y - y.mean() - occupancy.to_numpy() @ coef
    r2 = 1 - (residuals**2).sum() / ((y - y.mean()) ** 2).sum()
    assert summary["r2"] == pytest.approx(r2, rel=1e-9)
    # The same fit with an explicit intercept and a dropped column has the same R^2.
    design = np.column_stack([np.ones(12), occupancy.to_numpy()[:, :2]])
    _, (ssr,), *_ = np.linalg.lstsq(design, y, rcond=None)
    assert summary["r2"] == pytest.approx(1 - ssr / ((y - y.mean()) ** 2).sum(), rel=1e-9)
    assert summary["n_runs"] == 12 and table["std_error"].gt(0).all()


def test_convergence_times_flag_and_count_censored_runs():
    planted = planted_runs(n_runs=10, censor=(3, 7))
    conv = convergence_times(planted.trajectories, "eval_accuracy", THRESHOLD)
    assert conv.loc[[3, 7], "censored"].all() and conv["censored"].sum() == 2
    # Censored runs are set to their last logged step.
    assert (conv.loc[[3, 7], "convergence_step"] == conv.loc[[3, 7], "last_step"]).all()
    assert (conv.loc[[3, 7], "last_step"] == 400).all()
    first = planted.trajectories.query("seed == 0 and eval_accuracy > @THRESHOLD")["step"].min()
    assert conv.loc[0, "convergence_step"] == first and not conv.loc[0, "censored"]
    _, summary, runs = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.5)
    assert summary["n_censored"] == 2 and summary["censored_runs"] == [3, 7]
    assert runs.set_index("seed").loc[[3, 7], "censored"].all()


def test_strictly_above_threshold_and_nan_never_converge():
    table = pd.DataFrame(
        {"seed": [0, 0, 0, 1, 1], "step": [1, 2, 3, 1, 2], "acc": [0.9, 0.91, 0.5, np.nan, 0.2]}
    )
    conv = convergence_times(table, "acc", 0.9)
    assert conv["convergence_step"].tolist() == [2, 2] and conv["censored"].tolist() == [
        False,
        True,
    ]
    with pytest.raises(ValueError, match="eval_loss"):
        convergence_times(table, "eval_loss", 0.9)


def test_runs_excluded_from_the_hmm_are_listed():
    planted = planted_runs(n_runs=10)
    states = planted.states[planted.states["seed"] != 4]
    _, summary, runs = analyze_detours(states, planted.trajectories, 3, CONVERGENCE, 0.001)
    assert summary["excluded_runs"] == [4] and summary["n_runs"] == 9
    assert runs.set_index("seed")["in_regression"].sum() == 9


def assert_not_interpretable(table, summary, reason):
    assert summary["significant"] is False
    assert reason in summary["reason"]
    assert not table["is_detour"].any()


def test_no_converged_run():
    planted = planted_runs(n_runs=8, censor=tuple(range(8)))
    table, summary, _ = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.001)
    assert_not_interpretable(table, summary, "no run converged")
    assert summary["n_censored"] == 8 and table["coefficient"].isna().all()


def test_one_state_only():
    states = paths_table({0: [0, 0], 1: [0, 0, 0], 2: [0]})
    table, summary = fit_detour_regression(
        occupancy_fractions(states, 1), times([10, 20, 30]), 0.05
    )
    assert_not_interpretable(table, summary, "only one state")
    assert table["runs_visiting"].tolist() == [3]


def test_identical_paths():
    states = paths_table({seed: [0, 0, 1, 2] for seed in range(6)})
    table, summary = fit_detour_regression(
        occupancy_fractions(states, 3), times([10, 20, 30, 40, 50, 60]), 0.05
    )
    assert_not_interpretable(table, summary, "identical paths")


def test_fewer_runs_than_parameters():
    states = paths_table({0: [0, 1, 2, 2], 1: [0, 0, 1, 2], 2: [0, 1, 1, 2]})
    table, summary = fit_detour_regression(
        occupancy_fractions(states, 3), times([10, 20, 30]), 0.05
    )
    assert_not_interpretable(table, summary, "3 runs for 3 coefficients")


def test_same_convergence_time_for_every_run():
    states = paths_table({0: [0, 1, 1], 1: [0, 0, 1], 2: [0, 0, 0, 1], 3: [0, 1, 1, 1]})
    table, summary = fit_detour_regression(occupancy_fractions(states, 2), times([5] * 4), 0.05)
    assert_not_interpretable(table, summary, "same convergence time")


def test_not_significant_gives_coefficients_and_a_reason():
    rng = np.random.default_rng(0)
    occupancy = pd.DataFrame(rng.dirichlet(np.ones(2), size=10))
    table, summary = fit_detour_regression(
        occupancy, times(rng.integers(50, 60, 10).tolist()), 1e-6
    )
    assert_not_interpretable(table, summary, "not significant")
    assert table["coefficient"].notna().all() and summary["r2"] is not None


def test_unvisited_state_is_left_out_of_the_fit():
    states = paths_table({0: [0, 1, 1, 1], 1: [0, 0, 1, 1], 2: [0, 0, 0, 1], 3: [0, 1, 1, 1, 1]})
    table, summary = fit_detour_regression(
        occupancy_fractions(states, 3), times([40, 30, 20, 45]), 0.5
    )
    assert summary["reason"] is None or "not significant" in summary["reason"]
    assert np.isnan(table.loc[2, "coefficient"]) and table.loc[2, "runs_visiting"] == 0
    assert table.loc[[0, 1], "coefficient"].notna().all()


def test_dissimilarity_is_the_mean_pairwise_wasserstein_distance():
    occupancy = pd.DataFrame([[1.0, 0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
    positions = np.array([0.0, 1.0, 2.0])
    # pairs: (0,1) -> 2, (0,2) -> 0.5, (1,2) -> 1.5
    assert trajectory_dissimilarity(occupancy, positions) == pytest.approx(4 / 3)
    assert np.isnan(trajectory_dissimilarity(occupancy.iloc[:1], positions))


def test_dissimilarity_does_not_depend_on_state_numbering():
    planted = planted_runs(n_runs=8)
    _, summary, _ = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.001)
    relabelled = planted.states.assign(state=planted.states["state"].map({0: 2, 1: 0, 2: 1}))
    _, other, _ = analyze_detours(relabelled, planted.trajectories, 3, CONVERGENCE, 0.001)
    assert summary["dissimilarity"] == pytest.approx(other["dissimilarity"])
    assert summary["dissimilarity"] > 0


def test_a_setting_without_convergence_writes_the_keys_of_a_fitted_regression():
    """regression.json has one builder: without a convergence column (maps.no_regression)
    it carries every key a fitted one has (route evidence aside, which needs a fit), with
    the regression empty and the reason stated; the runs' summary is computed as usual."""
    from trainmap.maps.no_regression import REASON, describe_without_regression

    planted = planted_runs()
    table, fitted, _ = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.001)
    route_keys = {key for key in fitted if key.startswith("route") or "last_state" in key}
    route_keys |= {"baseline_rule", "n_converged"}  # the route evidence's own count
    bare_table, summary, runs = describe_without_regression(
        planted.states, planted.trajectories, 3, 0.001
    )
    assert list(summary) == [key for key in fitted if key not in route_keys]
    assert summary["reason"] == REASON and summary["significant"] is False
    assert summary["r2"] is None and summary["convergence"] is None
    assert summary["n_runs"] == fitted["n_runs"] and summary["n_detours"] == 0
    assert summary["dissimilarity"] == pytest.approx(fitted["dissimilarity"])
    assert list(bare_table.columns) == list(table.columns)
    assert bare_table["runs_visiting"].tolist() == table["runs_visiting"].tolist()
    assert runs["in_regression"].all()
