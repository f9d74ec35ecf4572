"""Figures (trainmap.figures.plots) and the summary across settings (trainmap.figures.summary)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.patches import Circle, FancyArrowPatch
from planted import FEATURES, THRESHOLD, branching_runs, planted_runs

from trainmap.config.settings import validate_config
from trainmap.figures.map import _layout, plot_map
from trainmap.figures.plots import (
    plot_coefficients,
    plot_comparison,
    plot_convergence,
    plot_trajectories,
)
from trainmap.figures.style import (
    DEAD_END,
    DETOUR,
    feature_change,
    save_figure,
    state_colors,
    transition_label,
)
from trainmap.figures.summary import comparison_pairs, headline, summary_markdown
from trainmap.maps.detours import analyze_detours
from trainmap.maps.graph import build_map, mark_detours

CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


def analysed(**kwargs) -> dict:
    planted = planted_runs(n_runs=10, **kwargs)
    detours, regression, runs = analyze_detours(
        planted.states, planted.trajectories, 3, CONVERGENCE, 0.001
    )
    times = runs.set_index("seed")
    training_map = build_map(planted.model, FEATURES, planted.sequences, planted.states, times)
    return {
        "planted": planted,
        "map": mark_detours(training_map, detours),
        "detours": detours,
        "regression": regression,
        "runs": runs,
    }


@pytest.fixture(scope="module")
def detour_case() -> dict:
    return analysed()


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for legend in fig.legends for t in legend.get_texts()
    ]


def test_map_figure_draws_observed_edges_in_training_order(detour_case):
    fig = plot_map(detour_case["map"], detour_case["detours"], detour_case["regression"], "demo")
    (ax,) = fig.axes
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    moves = [e for e in detour_case["map"]["edges"] if e["source"] != e["target"]]
    assert len(arrows) == len(moves) == 3
    nodes = {p.get_label() or i: p for i, p in enumerate(ax.patches) if isinstance(p, Circle)}
    assert len(nodes) == 3
    # Edge width grows with the number of runs taking the edge.
    widths = sorted(a.get_linewidth() for a in arrows)
    assert widths[0] < widths[-1] or len({e["runs"] for e in moves}) == 1
    all_text = "\n".join(texts(fig))
    assert "DETOUR" in all_text and "\u2191 var_w +2.50" in all_text
    assert "S1" in all_text and "forking" in fig.get_suptitle()
    detour_rings = [c for c in nodes.values() if np.allclose(c.get_edgecolor()[:3], _rgb(DETOUR))]
    assert len(detour_rings) == 1


@pytest.fixture(scope="module")
def branching_case() -> dict:
    """Censored runs branch off to a dead end (S4); converged runs pass S0 -> S1 -> S2, half
    of them through the detour S3."""
    planted = branching_runs()
    detours, regression, runs = analyze_detours(
        planted.states, planted.trajectories, 5, CONVERGENCE, 0.001
    )
    times = runs.set_index("seed")
    training_map = build_map(planted.model, FEATURES, planted.sequences, planted.states, times)
    return {
        "map": mark_detours(training_map, detours),
        "detours": detours,
        "regression": regression,
    }


def test_map_figure_draws_dead_ends_apart_from_detours(branching_case):
    case = branching_case
    fig = plot_map(case["map"], case["detours"], case["regression"], "demo")
    (ax,) = fig.axes
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    rings = [(c.get_edgecolor()[:3], c.get_linestyle()) for c in circles]
    assert sum(np.allclose(color, _rgb(DETOUR)) for color, _ in rings) == 1
    dead = [style for color, style in rings if np.allclose(color, _rgb(DEAD_END))]
    assert dead == ["--"]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert sum(a.get_linestyle() == "--" for a in arrows) == 1  # S0 -> S4 only
    all_text = "\n".join(texts(fig))
    assert "DEAD END" in all_text and "DETOUR" in all_text
    assert "dead end (no run converges)" in all_text
    assert "dead ends: S4" in ax.get_title() and "detour states: S3" in ax.get_title()


def test_transition_probabilities_cannot_be_read_as_p_values(detour_case):
    fig = plot_map(detour_case["map"], detour_case["detours"], detour_case["regression"], "demo")
    all_text = "\n".join(texts(fig))
    assert "p=" not in all_text
    probability = next(
        e for e in detour_case["map"]["edges"] if (e["source"], e["target"]) == (0, 1)
    )
    assert transition_label(0, 1, probability["probability"]) == "P(S0\u2192S1) = 0.05"
    assert "P(S0\u2192S1) = 0.05" in all_text
    assert re.search(r"P\(S2\u2192S2\) = 1\b", all_text)  # the self-loop, under its node
    assert "P(Si\u2192Sj): learned transition probability, not a p-value" in all_text


def _rgb(color: str) -> tuple[float, ...]:
    return tuple(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))


def test_layout_puts_states_every_run_visits_on_one_row(detour_case):
    positions = _layout(detour_case["map"])
    assert positions[0][1] == positions[2][1] == 0 and positions[1][1] != 0
    assert positions[0][0] < positions[1][0] < positions[2][0]


def test_feature_change_labels():
    assert feature_change("l2", -0.591) == "\u2193 l2 \u22120.59"
    assert feature_change("l2", 1.2) == "\u2191 l2 +1.20"
    assert feature_change("l2", 0.001).startswith("\u00b7")


def test_trajectories_figure_colours_segments_by_state(detour_case):
    planted = detour_case["planted"]
    fig = plot_trajectories(
        planted.trajectories, planted.states, FEATURES, CONVERGENCE, detour_case["map"], "demo"
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible][1:] == FEATURES
    lines = [c for c in visible[1].collections if isinstance(c, LineCollection)]
    (collection,) = lines
    n_segments = sum(len(run) - 1 for _, run in planted.trajectories.groupby("seed"))
    assert len(collection.get_segments()) == n_segments
    colors = {tuple(np.round(c[:3], 3)) for c in collection.get_colors()}
    expected = {tuple(np.round(_rgb(c), 3)) for c in state_colors(3)}
    assert colors == expected
    assert any("S1 (detour)" in t for t in texts(fig))


def test_coefficients_and_summary_name_dead_ends(branching_case):
    case = branching_case
    fig = plot_coefficients(case["detours"], case["regression"], case["map"], "demo")
    assert any("dead end" in t for t in texts(fig))
    row = headline(case["map"], case["detours"], case["regression"])
    assert row["detours"] == "1 (S3)" and row["dead ends"] == "1 (S4)"


def test_convergence_figure_counts_censored_runs():
    case = analysed(censor=(2, 7))
    fig = plot_convergence(case["runs"], case["detours"], case["regression"], "demo")
    labels = texts(fig) + [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("censored") and label.endswith("(2)") for label in labels)
    assert "2 censored" in fig.axes[0].get_title()


def test_coefficients_figure_says_why_when_not_fitted():
    case = analysed(censor=tuple(range(10)))
    fig = plot_coefficients(case["detours"], case["regression"], case["map"], "demo")
    assert any("no run converged" in t for t in texts(fig))


def test_coefficients_figure_has_error_bars(detour_case):
    fig = plot_coefficients(
        detour_case["detours"], detour_case["regression"], detour_case["map"], "demo"
    )
    (ax,) = fig.axes
    assert len(ax.containers) == 3  # one errorbar per state
    assert any("DETOUR" in t for t in texts(fig))


def test_save_figure_writes_a_png(detour_case, tmp_path):
    pair = {"a": "a", "b": "b", "switch": "detour", "differences": {"detour": [True, False]}}
    second = analysed(detour=False)
    bundles = [
        {"name": name, **{k: case[k] for k in ("map", "detours", "regression", "runs")}}
        for name, case in (("a", detour_case), ("b", second))
    ]
    path = tmp_path / "figs" / "comparison.png"
    save_figure(plot_comparison(*bundles, pair), path, dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def settings(**overrides):
    base = {"source": "train", "seeds": 2, "convergence": CONVERGENCE}
    config = {
        "settings": {
            "mod": {**base, "task": "modular_addition", "layer_norm": False, "batch_size": 2048},
            "mod_ln": {**base, "task": "modular_addition", "layer_norm": True, "batch_size": 256},
            "parity": {**base, "task": "sparse_parity", "lr": 0.1},
            "parity_fast": {**base, "task": "sparse_parity", "lr": 0.5},
            **overrides,
        }
    }
    return validate_config(config)


def test_comparison_pairs_differ_in_one_key_or_one_switch():
    pairs = comparison_pairs(settings())
    assert [(p["a"], p["b"], p["switch"]) for p in pairs] == [
        ("mod", "mod_ln", "layer_norm"),
        ("parity", "parity_fast", "lr"),
    ]
    assert pairs[0]["differences"] == {"batch_size": [2048, 256], "layer_norm": [False, True]}


def test_summary_markdown_has_a_row_per_setting_and_side_by_side_tables(detour_case):
    case = analysed(censor=tuple(range(10)))
    headlines = {
        "mod": headline(detour_case["map"], detour_case["detours"], detour_case["regression"]),
        "mod_ln": headline(case["map"], case["detours"], case["regression"]),
    }
    assert headlines["mod"]["detours"] == "1 (S1)" and headlines["mod"]["forking"] == "yes"
    assert headlines["mod"]["dead ends"] == "0"
    assert headlines["mod_ln"]["dead ends"] == "3 (S0, S1, S2)"  # no run converges
    assert headlines["mod_ln"]["R²"] == "–" and "no run converged" in headlines["mod_ln"]["note"]
    pair = comparison_pairs(settings())[0]
    text = summary_markdown(headlines, [pair], {"mod--mod_ln": "comparisons/mod--mod_ln.png"})
    rows = [line for line in text.splitlines() if line.startswith("| mod")]
    assert len(rows) == 2 and rows[0].split("|")[2].strip() == "3"
    assert "### mod vs mod_ln: `layer_norm` = false vs true" in text
    assert "`batch_size` 2048 vs 256" in text
    assert "![mod vs mod_ln](comparisons/mod--mod_ln.png)" in text
    assert "[map](mod/map.png)" in text


@pytest.mark.slow
def test_report_builds_with_every_figure_grouped_by_setting(tiny_run):
    """`snakemake --report` on the finished tiny run (the fixture makes report.html):
    every figure, one category per setting."""
    workdir = tiny_run
    html = (workdir / "report.html").read_text()
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", html).group(1))
    for setting in ("modular", "parity"):
        figures = {Path(p).name for files in categories[setting].values() for p in files}
        assert figures >= {
            "map.png",
            "trajectories.png",
            "convergence.png",
            "coefficients.png",
            "map.html",
            "curves.html",
        }
    summary = (workdir / "results" / "summary.md").read_text()
    assert "| modular |" in summary and "| parity |" in summary
