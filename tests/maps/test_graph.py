"""The training map (trainmap.maps.graph): edges, labels and forking on planted paths."""

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from planted import FEATURES, THRESHOLD, branching_runs, paths_table, planted_runs

from trainmap.hmm.filtering import (
    emission_posteriors,
    filtering_posteriors,
    log_filtering_posteriors,
    log_odds_gradients,
    posterior_gradients,
)
from trainmap.maps.detours import analyze_detours, convergence_times
from trainmap.maps.graph import (
    MIN_IMPORTANCE,
    build_map,
    edge_table,
    entry_importance,
    is_forking,
    mark_detours,
    transitions,
)

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def uniform_convergence(seeds, step: int = 100) -> pd.DataFrame:
    index = pd.Index(sorted(seeds), name="seed")
    return pd.DataFrame({"convergence_step": step, "censored": False}, index=index)


def planted_map(**kwargs) -> tuple[dict, object]:
    planted = planted_runs(**kwargs)
    times = convergence_times(planted.trajectories, "eval_accuracy", THRESHOLD)
    result = build_map(planted.model, FEATURES, planted.sequences, planted.states, times)
    return result, planted


def test_edge_pruning_keeps_exactly_the_observed_transitions():
    paths = {0: [0, 0, 1, 3, 3], 1: [0, 2, 2, 3], 2: [1, 3, 0]}
    transmat = np.full((4, 4), 0.25)  # every transition is possible under the model
    edges = edge_table(paths_table(paths), transmat, uniform_convergence(paths))
    observed = {(0, 0), (0, 1), (1, 3), (3, 3), (0, 2), (2, 2), (2, 3), (3, 0)}
    assert set(zip(edges["source"], edges["target"], strict=True)) == observed
    assert len(edges) == len(observed)
    by_edge = edges.set_index(["source", "target"])
    assert by_edge.loc[(1, 3), "runs"] == 2
    assert by_edge.loc[(0, 0), "runs"] == 1
    assert by_edge.loc[(3, 3), "runs"] == 1
    assert (edges["probability"] == 0.25).all()


def test_transitions_are_per_run_and_in_order():
    pairs = transitions(paths_table({5: [2, 1], 3: [0, 0, 1]}))
    assert pairs[["seed", "source", "target"]].values.tolist() == [[3, 0, 0], [3, 0, 1], [5, 2, 1]]
    assert pairs["step"].tolist() == [20, 30, 20]


def test_edge_mean_convergence_counts_censored_runs_at_their_censoring_time():
    paths = {0: [0, 1], 1: [0, 1], 2: [0, 0]}
    times = pd.DataFrame(
        {"convergence_step": [10, 30, 500], "censored": [False, False, True]},
        index=pd.Index([0, 1, 2], name="seed"),
    )
    edges = edge_table(paths_table(paths), np.full((2, 2), 0.5), times).set_index(
        ["source", "target"]
    )
    assert edges.loc[(0, 1), "mean_convergence"] == 20
    assert edges.loc[(0, 1), "runs_censored"] == 0
    assert edges.loc[(0, 0), "mean_convergence"] == 500
    assert edges.loc[(0, 0), "runs_censored"] == 1


def test_planted_detour_map():
    result, planted = planted_map()
    n_detour = len(planted.detour_runs)
    assert result["n_states"] == 3 and result["forking"] is True
    assert result["initial_states"] == [0] and result["final_states"] == [2]
    assert result["order"] == [0, 1, 2]
    edges = {(e["source"], e["target"]): e for e in result["edges"]}
    assert set(edges) == {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)}
    assert edges[(0, 1)]["runs"] == n_detour == 12
    assert edges[(0, 2)]["runs"] == 24 - n_detour
    assert edges[(0, 1)]["probability"] == pytest.approx(0.05)
    assert edges[(0, 1)]["mean_convergence"] > edges[(0, 2)]["mean_convergence"] + 50
    # var_w is the feature that jumps into the detour and back out of it.
    assert list(edges[(0, 1)]["feature_changes"])[0] == "var_w"
    assert edges[(0, 1)]["feature_changes"]["var_w"] == pytest.approx(2.5)
    assert edges[(1, 2)]["feature_changes"]["var_w"] == pytest.approx(-2.5)
    assert edges[(0, 2)]["feature_changes"]["l1"] == pytest.approx(3.0)
    assert edges[(0, 0)]["feature_changes"] == {}
    states = {s["id"]: s for s in result["states"]}
    assert states[1]["top_features"][0] == "var_w"
    assert [states[k]["runs_visiting"] for k in range(3)] == [24, 12, 24]
    assert all(len(s["top_features"]) == 3 for s in result["states"])


def test_linear_path_is_not_forking():
    result, _ = planted_map(detour=False)
    assert result["forking"] is False
    moves = {(e["source"], e["target"]) for e in result["edges"] if e["source"] != e["target"]}
    assert moves == {(0, 1), (1, 2)}


@pytest.mark.parametrize(
    ("moves", "visited", "forking"),
    [
        ([], [0], False),
        ([(0, 1), (1, 2)], [0, 1, 2], False),
        ([(0, 1), (0, 2), (1, 2)], [0, 1, 2], True),  # a skip is a fork
        ([(0, 1), (1, 0)], [0, 1], True),  # a cycle
        ([(0, 1)], [0, 1, 2], True),  # a run alone in state 2: disconnected
        ([(2, 0), (0, 1)], [0, 1, 2], False),  # path order need not follow state ids
    ],
)
def test_is_forking(moves, visited, forking):
    loops = [(k, k) for k in visited]
    edges = pd.DataFrame(moves + loops, columns=["source", "target"])
    assert is_forking(edges, visited) is forking


def test_entry_importance_is_the_finite_difference_derivative_at_the_first_step_in_k():
    """|d log p(s_t = k | z_1..t) / d z_t| at the first step in k, by central differences."""
    planted = planted_runs(n_runs=3)
    planted.model.covars_ = np.full((3, len(FEATURES)), 3.0)  # an uncertain filter at entry
    run = planted.sequences[planted.sequences["seed"] == 0].reset_index(drop=True)
    path = planted.states.loc[planted.states["seed"] == 0, "state"].to_numpy()
    entries = entry_importance(
        planted.model, FEATURES, run, planted.states[planted.states["seed"] == 0]
    )
    X = run[FEATURES].to_numpy()
    t = int(np.flatnonzero(path == 1)[0])  # run 0 takes the detour 0 -> 1
    eps = 1e-6
    numeric = np.zeros(len(FEATURES))
    for f in range(len(FEATURES)):
        up, down = X.copy(), X.copy()
        up[t, f] += eps
        down[t, f] -= eps
        delta = (
            log_filtering_posteriors(planted.model, up)[t, 1]
            - log_filtering_posteriors(planted.model, down)[t, 1]
        )
        numeric[f] = delta / (2 * eps)
    mean, count = entries[(0, 1)]
    assert count == 1
    assert np.abs(numeric).max() > 0.05
    np.testing.assert_allclose(mean, np.abs(numeric), rtol=1e-5, atol=1e-8)
    assert set(entries) == {(0, 1), (1, 2)}


def test_label_gradient_is_the_finite_difference_derivative_of_the_log_odds():
    """d logit p(s_t = k | z_1..t) / d z_t by central differences, mid-run."""
    planted = planted_runs(n_runs=2)  # run 0 takes the detour 0 -> 1 -> 2
    planted.model.covars_ = np.full((3, len(FEATURES)), 3.0)  # an uncertain filter
    X = planted.sequences.loc[planted.sequences["seed"] == 0, FEATURES].to_numpy()
    path = planted.states.loc[planted.states["seed"] == 0, "state"].to_numpy()
    gradients = log_odds_gradients(planted.model, X, path)
    # Checkpoints where the filter leaves the other states some probability (in the
    # absorbing last state it rules them out and the uniform-prior fallback applies).
    open_filter = np.isfinite(log_filtering_posteriors(planted.model, X)).sum(axis=1) > 1
    checks = [3, int(np.flatnonzero(path == 1)[0]) + 2, int(np.flatnonzero(path == 2)[0]) + 1]
    assert open_filter[checks].all()
    for t in checks:
        k, eps = path[t], 1e-6
        numeric = np.zeros(len(FEATURES))
        for f in range(len(FEATURES)):
            up, down = X.copy(), X.copy()
            up[t, f] += eps
            down[t, f] -= eps
            log_up = log_filtering_posteriors(planted.model, up)[t]
            log_down = log_filtering_posteriors(planted.model, down)[t]
            logit_up = log_up[k] - np.log1p(-np.exp(log_up[k]))
            logit_down = log_down[k] - np.log1p(-np.exp(log_down[k]))
            numeric[f] = (logit_up - logit_down) / (2 * eps)
        np.testing.assert_allclose(gradients[t], numeric, rtol=1e-5, atol=1e-7)
        # Same ranking as the derivative of log p: the two differ by the factor 1 - p.
        p = filtering_posteriors(planted.model, X)[t, k]
        np.testing.assert_allclose(
            posterior_gradients(planted.model, X)[t, k], (1 - p) * gradients[t], rtol=1e-8
        )


def test_label_gradient_at_a_one_hot_start_uses_the_uniform_prior():
    planted = planted_runs(n_runs=2)
    run = planted.sequences[planted.sequences["seed"] == 1]
    X = run[FEATURES].to_numpy()
    path = planted.states.loc[planted.states["seed"] == 1, "state"].to_numpy()
    # Under the one-hot start probabilities the derivative of log p vanishes exactly.
    assert filtering_posteriors(planted.model, X)[0, 0] == 1.0
    assert not posterior_gradients(planted.model, X)[0, 0].any()
    q = emission_posteriors(planted.model, X[:1])[0]
    q[0] = 0
    q /= q.sum()
    g = (planted.model.means_ - X[0]) / planted.model.covars_.diagonal(axis1=1, axis2=2)
    np.testing.assert_allclose(log_odds_gradients(planted.model, X, path)[0], g[0] - q @ g)


@pytest.fixture(scope="module")
def branching() -> tuple[dict, object]:
    planted = branching_runs()
    times = convergence_times(planted.trajectories, "eval_accuracy", THRESHOLD)
    return build_map(planted.model, FEATURES, planted.sequences, planted.states, times), planted


def test_every_state_label_rests_on_importances_well_above_numerical_noise(branching):
    """Branching runs: one-hot start, a dead-end branch and long stays saturate the filter;
    the derivative of log p falls below 1e-12 there, the labels' importances do not."""
    result, planted = branching
    assert "log-odds" in result["state_labels"] and "every checkpoint" in result["state_labels"]
    for state in result["states"]:
        assert len(state["top_features"]) == 3, state
        assert min(state["importance"].values()) > 1e-4, state  # noise: < 1e-12
    labels = {s["id"]: s["top_features"] for s in result["states"]}
    assert labels[3][0] == "var_w"  # the side state is the one where var_w jumps
    assert "var_w" in labels[4][:2]  # the branch: var_w falls
    # The old start-state definition would have ranked noise: derivative at t = 0.
    run = planted.sequences[planted.sequences["seed"] == 0][FEATURES].to_numpy()
    saturated = np.abs(posterior_gradients(planted.model, run)[1:, 4]).max(axis=1)
    assert (saturated < 1e-12).any()


def test_every_state_gets_its_kind_from_the_detour_table(branching):
    result, planted = branching
    assert {s["kind"] for s in result["states"]} == {""}  # build_map alone knows no kinds
    detours, _, _ = analyze_detours(planted.states, planted.trajectories, 5, CONVERGENCE, 0.001)
    marked = mark_detours(result, detours)
    assert [s["kind"] for s in marked["states"]] == ["", "", "", "detour", "dead_end"]
    assert [s["is_detour"] for s in marked["states"]] == [False, False, False, True, False]
    assert [s["converged_runs_visiting"] for s in marked["states"]] == [24, 24, 24, 12, 0]
    assert marked["forking"] is True


def test_labels_leave_out_features_below_the_noise_floor():
    # Features 2 and 3 have the same mean and variance in both states: no information.
    model = GaussianHMM(n_components=2, covariance_type="diag")
    model.n_features = 4
    model.startprob_, model.transmat_ = np.array([1.0, 0.0]), np.array([[0.9, 0.1], [0, 1]])
    model.means_ = np.array([[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.0, 0.0]])
    model.covars_ = np.ones((2, 4))
    states = paths_table({0: [0, 0, 1, 1], 1: [0, 1, 1, 1]})
    sequences = states[["seed", "step"]].assign(a=1.0, b=-0.5, c=0.0, d=0.0)
    result = build_map(model, ["a", "b", "c", "d"], sequences, states, uniform_convergence([0, 1]))
    assert [s["top_features"] for s in result["states"]] == [["a", "b"], ["a", "b"]]
    assert MIN_IMPORTANCE < 1e-3


def test_single_state_map():
    model = GaussianHMM(n_components=1, covariance_type="diag")
    model.n_features = 2
    model.startprob_, model.transmat_ = np.array([1.0]), np.array([[1.0]])
    model.means_, model.covars_ = np.zeros((1, 2)), np.ones((1, 2))
    states = paths_table({0: [0, 0, 0], 1: [0, 0]})
    sequences = states[["seed", "step"]].assign(a=0.5, b=-0.5)
    result = build_map(model, ["a", "b"], sequences, states, uniform_convergence([0, 1]))
    assert result["forking"] is False
    assert [(e["source"], e["target"], e["runs"]) for e in result["edges"]] == [(0, 0, 2)]
    assert result["states"][0]["runs_visiting"] == 2
    assert result["states"][0]["top_features"] == []  # nothing to tell apart


def test_missing_convergence_time_is_an_error():
    with pytest.raises(ValueError, match="convergence time"):
        edge_table(paths_table({0: [0], 1: [0]}), np.ones((1, 1)), uniform_convergence([0]))
