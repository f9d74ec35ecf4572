"""What the map pages and summary.md say besides the map: runs left out (with why), an
unmeasured run drawn like any other, and notes when the data cannot carry the fit."""

import logging

import numpy as np
import pandas as pd
from planted import FEATURES, THRESHOLD, planted_runs

from trainmap.figures.map_html import map_page
from trainmap.figures.summary import headline, setting_details, summary_markdown
from trainmap.hmm.adequacy import (
    near_means_note,
    negligible_transitions_note,
    parameter_note,
    step_grid_note,
)
from trainmap.maps.detours import analyze_detours
from trainmap.maps.graph import build_map, mark_detours
from trainmap.maps.notes import excluded_runs, fit_notes, with_notes

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def test_a_run_without_convergence_values_is_drawn_and_marked_unmeasured():
    """draw_training_map used to fail: ValueError: runs without a convergence time: [2]."""
    planted = planted_runs(n_runs=10)
    trajectories = planted.trajectories.copy()
    trajectories.loc[trajectories["seed"] == 2, "eval_accuracy"] = np.nan
    detours, regression, runs = analyze_detours(planted.states, trajectories, 3, CONVERGENCE, 0.5)
    runs = runs.set_index("seed")
    training_map = build_map(planted.model, FEATURES, planted.sequences, planted.states, runs)
    training_map = mark_detours(training_map, detours)
    assert training_map["n_runs"] == 10  # run 2 is on the map
    first = next(e for e in training_map["edges"] if e["source"] == 0 and e["target"] == 0)
    assert first["runs"] == 10 and first["runs_unmeasured"] == 1
    measured = runs.drop(index=2)
    assert first["mean_convergence"] == measured["convergence_step"].mean()  # run 2 not in it
    training_map = with_notes(training_map, {"excluded": [], "notes": []}, regression, [])
    assert training_map["excluded_runs"] == [
        {
            "seed": 2,
            "reason": "unmeasured: no finite eval_accuracy value (drawn on the map, marked so)",
            "left_out_of": "regression",
        }
    ]
    page = map_page(training_map, detours, planted.states, runs, planted.model.means_, "demo")
    assert '[2,null,"unmeasured"]' in page  # the seed lists: step unknown, marked
    assert "<td>2</td><td>regression</td><td>unmeasured: no finite eval_accuracy" in page


def test_every_excluded_run_is_listed_in_the_summary_and_on_the_page():
    planted = planted_runs(n_runs=10)
    detours, regression, runs = analyze_detours(
        planted.states, planted.trajectories, 3, CONVERGENCE, 0.5
    )
    training_map = mark_detours(
        build_map(planted.model, FEATURES, planted.sequences, planted.states,
                  runs.set_index("seed")),
        detours,
    )  # fmt: skip
    prepare = {
        "excluded": [{"seed": 11, "reason": "diverged: train_loss turned non-finite at step 120"}],
        "notes": ["runs log on different step grids: ..."],
    }
    training_map = with_notes(training_map, prepare, regression, ["a fit note"])
    assert excluded_runs(prepare, regression)[0]["left_out_of"] == "map and regression"
    row = headline(training_map, detours, regression)
    assert "left out of the HMM: runs [11] (reasons below)" in row["note"]
    details = setting_details(training_map)
    assert details == [
        "run 11 left out of the map and regression: diverged: train_loss turned non-finite at "
        "step 120",
        "runs log on different step grids: ...",
        "a fit note",
    ]
    text = summary_markdown({"demo": row}, [], {}, details={"demo": details})
    assert "## Runs left out and notes\n\n- **demo**:\n  - run 11 left out of the map" in text
    page = map_page(
        training_map, detours, planted.states, runs.set_index("seed"), planted.model.means_, "d"
    )
    assert "Runs left out (1)" in page and "a fit note" in page


def test_parameters_per_candidate_against_fit_rows():
    """The issue's case: 14 features, full covariance, 126 fit rows: K=2 has 241."""
    note = parameter_note([1, 2, 3, 4], 14, 126, "full")
    assert note == (
        "hmm.states: K=2..4 have more free parameters than the 126 fit rows (K=2: 241 with "
        "14 features, full covariance), so BIC favours small K whatever the data; the largest "
        "K they carry is K=1. Use fewer features (features:), or covariance: diag (K=2: 59 "
        "parameters), or more runs or checkpoints"
    )
    assert parameter_note([1, 2], 14, 500, "full") is None
    assert "no candidate K fits" in parameter_note([1, 2], 14, 100, "full")
    assert "covariance: diag" not in parameter_note([5, 8], 14, 100, "diag")


def test_near_identical_means_and_negligible_transitions():
    means = np.array([[0.0, 1.0], [0.05, 0.98], [2.0, -1.0]])
    assert near_means_note(means) == (
        "near-identical state means: S0 and S1 (largest difference 0.05 z): the map may draw "
        "one phase as two states; fewer states (hmm.states) or more distinct features would "
        "tell them apart"
    )
    assert near_means_note(means[[0, 2]]) is None
    states = pd.DataFrame({"seed": [0, 0, 0, 1, 1], "step": [0, 1, 2, 0, 1],
                           "state": [0, 1, 1, 0, 0]})  # fmt: skip
    transmat = np.array([[0.9, 1e-35], [0.0, 1.0]])
    assert negligible_transitions_note(states, transmat) == (
        "decoded paths take transitions the model gives negligible probability (< 1e-06): "
        "S0→S1 (probability 1.0e-35, seed(s) 0); the emissions forced them, the map's edges "
        "there are no learned road"
    )
    assert negligible_transitions_note(states, np.array([[0.9, 0.1], [0.0, 1.0]])) is None


def test_fit_notes_are_logged(caplog):
    model = {"features": ["a"] * 14, "covariance": "full",
             "means": [[0.0] * 14, [0.01] * 14], "transmat": [[0.5, 0.5], [0.5, 0.5]]}  # fmt: skip
    sequences = pd.DataFrame({"split": ["fit"] * 126 + ["val"] * 30})
    states = pd.DataFrame({"seed": [0, 0], "step": [0, 1], "state": [0, 1]})
    with caplog.at_level(logging.WARNING, "trainmap"):
        notes = fit_notes([1, 2], model, sequences, states)
    assert len(notes) == 2 and all(note in caplog.text for note in notes)
    assert notes[0].startswith("hmm.states: K=2 have more free parameters than the 126")


def test_step_grids():
    runs = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "step": [0, 20, 40, 0, 40, 80]})
    assert "every 20 steps (seed(s) 0); every 40 steps (seed(s) 1)" in step_grid_note(runs)
    assert step_grid_note(runs[runs["seed"] == 0]) is None


def test_the_summary_says_how_much_of_r2_one_state_boundary_carries():
    """The occupancy R² is called "mostly the last state's share" only when that share
    alone gives most of it, and a route that explains less than nothing says "nothing"."""
    planted = planted_runs(n_runs=10)
    detours, _, _ = analyze_detours(planted.states, planted.trajectories, 3, CONVERGENCE, 0.5)
    training_map = {"n_states": 3, "forking": False}

    def note(r2, last, route):
        regression = {"r2": r2, "r2_last_state": last, "route_r2_cv": route, "significant": True}
        return headline(training_map, detours, regression)["note"]

    assert "R² 1.00 is mostly the last state's share (alone 0.86)" in note(0.996, 0.86, -0.06)
    assert "explains nothing out of sample" in note(0.996, 0.86, -0.06)
    mixed = note(0.87, 0.45, 0.09)
    assert "mostly" not in mixed and "(the last state's share alone: 0.45)" in mixed
    assert "explains only 0.09 out of sample" in mixed
    assert "passes through" not in note(0.9, 0.2, 0.6)  # the route carries the evidence
