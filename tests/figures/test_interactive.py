"""The interactive pages (trainmap.figures): map.html and curves.html, without a browser.

tests/figures/test_browser.py opens the same pages in Chromium.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
from planted import FEATURES, THRESHOLD, branching_runs, paths_table, planted_runs

from trainmap.figures.curves_html import (
    MISSING,
    curves_page,
    display_rows,
    points_per_run,
    quantize,
)
from trainmap.figures.map import _layout, map_geometry
from trainmap.figures.map_html import dwell_times, map_page
from trainmap.maps.detours import analyze_detours
from trainmap.maps.graph import build_map, mark_detours

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}
METRICS = [
    "l1", "l2", "code_sparsity", "trace", "spectral", "computational_sparsity", "mean_lambda",
    "variance_lambda", "mean_w", "median_w", "var_w", "mean_b", "median_b", "var_b",
]  # fmt: skip
MiB = 2**20


def analysed_case(planted, n_states: int) -> dict:
    detours, regression, runs = analyze_detours(
        planted.states, planted.trajectories, n_states, CONVERGENCE, 0.001
    )
    training_map = build_map(
        planted.model, FEATURES, planted.sequences, planted.states, runs.set_index("seed")
    )
    return {
        "planted": planted,
        "map": mark_detours(training_map, detours),
        "detours": detours,
        "runs": runs.set_index("seed"),
    }


@pytest.fixture(scope="module")
def detour_case() -> dict:
    return analysed_case(planted_runs(n_runs=10), 3)


def map_text(case: dict, setting: str = "planted") -> str:
    planted = case["planted"]
    return map_page(
        case["map"], case["detours"], planted.states, case["runs"], planted.model.means_, setting
    )


def page_data(text: str) -> dict:
    block = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(block.group(1))


def plotly_data(text: str) -> list[dict]:
    """The traces given to Plotly.newPlot (the first argument after the div id)."""
    call = re.search(r'Plotly\.newPlot\(\s*"figure",\s*(\[.*?\]),\s*\{', text, re.S)
    return json.loads(call.group(1))


def test_dwell_times_by_hand():
    # seed 0: S0 S0 S1 S1 S1 S0 (steps 10..60); seed 1: S1 S1
    states = paths_table({0: [0, 0, 1, 1, 1, 0], 1: [1, 1]})
    dwell = dwell_times(states, 3)
    # S0 stays: 2 checkpoints (10 -> 30: 20 steps), 1 checkpoint (60, last: 0 steps)
    assert dwell.loc[0, "checkpoints"] == 1.5 and dwell.loc[0, "steps"] == 10.0
    # S1 stays: 3 checkpoints (30 -> 60: 30 steps), 2 checkpoints (10 -> 20 last: 10 steps)
    assert dwell.loc[1, "checkpoints"] == 2.5 and dwell.loc[1, "steps"] == 20.0
    assert dwell.loc[2].isna().all()


def test_geometry_is_the_png_layout(detour_case):
    training_map = detour_case["map"]
    geometry = map_geometry(training_map, detour_case["detours"])
    column = geometry["edges"][(0, 2)]["points"]
    assert set(geometry["positions"]) == {0, 1, 2}
    # the same positions as map.png's layout, up to its column width
    layout = _layout(training_map, 1.0)
    spacing = geometry["positions"][2][0] / layout[2][0]
    assert all(geometry["positions"][k][0] == pytest.approx(layout[k][0] * spacing) for k in layout)
    assert geometry["kinds"] == {0: "", 1: "detour", 2: ""}
    np.testing.assert_allclose(column[0], geometry["positions"][0])
    np.testing.assert_allclose(column[-1], geometry["positions"][2])


def test_map_page_holds_every_state_edge_and_run(detour_case):
    text = map_text(detour_case)
    traces = {t.get("name"): t for t in plotly_data(text)}
    training_map = detour_case["map"]
    assert len(traces["states"]["customdata"]) == len(training_map["states"]) == 3
    assert len(traces["edges"]["customdata"]) == len(training_map["edges"])
    hover = dict(zip(traces["states"]["customdata"], traces["states"]["hovertext"], strict=True))
    detour_runs = detour_case["planted"].detour_runs
    assert f"runs visiting: {len(detour_runs)}/10" in hover[1]
    assert "DETOUR" in hover[1] and "kind: detour" in hover[1] and "mean dwell:" in hover[1]
    assert "var_w = +2.50" in hover[1]  # the planted state mean of its label feature
    edges = traces["edges"]["hovertext"]
    assert any("P(S0→S1)" in h and "transition probability" in h for h in edges)
    data = page_data(text)
    assert [row[0] for row in data["state_seeds"]["1"]] == detour_runs
    converged = detour_case["runs"]["convergence_step"]
    assert all(row[1] == converged[row[0]] for row in data["state_seeds"]["0"])
    (s01,) = [e for e in data["edges"] if (e["source"], e["target"]) == (0, 1)]
    assert [row[0] for row in s01["seeds"]] == detour_runs
    assert sorted(data["paths"], key=int) == [str(s) for s in range(10)]
    # a run's path ends on the node of its last state (S2 for every planted run)
    path = data["paths"]["0"]
    geometry = map_geometry(training_map, detour_case["detours"])
    assert (path["x"][-1], path["y"][-1]) == pytest.approx(geometry["positions"][2], abs=1e-3)


def test_map_page_writes_each_edge_support_beside_the_edge(detour_case):
    """With resamples, an edge's label on the page ends with its support, as on map.png
    (the hover says it too); without them the label has none."""
    training_map = json.loads(json.dumps(detour_case["map"]))
    for edge in training_map["edges"]:
        edge["support"] = 0.37
    text = map_text({**detour_case, "map": training_map})
    between = [e for e in training_map["edges"] if e["source"] != e["target"]]
    label = json.dumps(" · support 37%")[1:-1]  # as the page's JSON writes it
    assert text.count(label) == len(between) > 0
    assert json.dumps(" · support")[1:-1] not in map_text(detour_case)


def test_pages_are_self_contained_and_deterministic(detour_case):
    text = map_text(detour_case)
    assert text == map_text(detour_case)
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js inlined, nothing fetched
    assert not re.search(r"<link[^>]+href=", text)
    assert "plotly.js v" in text or "plotly.min.js" in text or "Plotly" in text


def test_dead_ends_are_marked(tmp_path):
    case = analysed_case(branching_runs(n_converged=8, n_censored=4), 5)
    text = map_text(case, "branching")
    traces = {t.get("name"): t for t in plotly_data(text)}
    hover = dict(zip(traces["states"]["customdata"], traces["states"]["hovertext"], strict=True))
    assert "DEAD END" in hover[4] and "converged runs visiting: 0" in hover[4]


def synthetic_runs(n_runs: int, n_checkpoints: int, n_states: int = 4, seed: int = 0):
    """Trajectories with every metric and eval_accuracy, and states changing 3 times."""
    rng = np.random.default_rng(seed)
    steps = 10 * np.arange(n_checkpoints)
    tables, states = [], []
    for run in range(n_runs):
        table = {"seed": run, "step": steps}
        noise = rng.normal(0, 0.05, n_checkpoints)
        table["eval_accuracy"] = np.linspace(0, 1, n_checkpoints) + noise
        for name in METRICS:
            table[name] = np.cumsum(rng.normal(size=n_checkpoints))
        tables.append(pd.DataFrame(table))
        path = np.minimum(np.arange(n_checkpoints) * n_states // n_checkpoints, n_states - 1)
        states.append(pd.DataFrame({"seed": run, "step": steps, "state": path}))
    return pd.concat(tables, ignore_index=True), pd.concat(states, ignore_index=True)


def test_curves_page_stays_small_for_40_runs_of_1000_checkpoints():
    trajectories, states = synthetic_runs(40, 1000)
    text = curves_page(trajectories, states, METRICS, CONVERGENCE, 4, "synthetic")
    assert len(text.encode()) < 5 * MiB
    data = page_data(text)
    assert data["columns"] == ["eval_accuracy", *METRICS]
    assert len(data["runs"]) == 40 and data["points_per_run"] < 1000
    assert data["points_per_run"] == points_per_run(40, 15)


def test_display_rows_keep_every_change_of_state():
    states = np.repeat([0, 1, 0, 2], [300, 5, 400, 295])
    rows = display_rows(states, 60)
    assert len(rows) <= 60 + 4 and rows[0] == 0 and rows[-1] == 999
    for change in np.flatnonzero(states[1:] != states[:-1]):
        assert change in rows and change + 1 in rows
    assert np.array_equal(display_rows(states[:50], 60), np.arange(50))


def test_quantized_values_decode_to_within_a_65534th_of_the_range():
    values = np.array([-2.0, 0.1234, 3.0, np.nan])
    codes = quantize(values, -2.0, 3.0)
    assert codes[-1] == MISSING and codes[0] == 0 and codes[2] == MISSING - 1
    decoded = -2.0 + codes[:3] * 5.0 / (MISSING - 1)
    np.testing.assert_allclose(decoded, values[:3], atol=5.0 / (MISSING - 1))


def test_curves_page_refuses_a_missing_column():
    trajectories, states = synthetic_runs(2, 20)
    with pytest.raises(ValueError, match="'nope'"):
        curves_page(trajectories, states, ["nope"], CONVERGENCE, 4, "synthetic")
