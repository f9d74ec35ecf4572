"""Figures of one setting (trajectories, convergence, coefficients) and comparisons.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no global
state); the map itself is drawn by ``trainmap.figures.map``, colours come from
``trainmap.figures.style``.
"""

import json
import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from trainmap.figures.map import draw_map
from trainmap.figures.style import (
    DETOUR,
    INK,
    PALETTE,
    UNDECODED,
    detour_states,
    regression_line,
    state_colors,
)
from trainmap.figures.summary import headline
from trainmap.maps.convergence import rule_text


def _state_segments(run: pd.DataFrame, column: str, colors: list[str]):
    steps, values = run["step"].to_numpy(), run[column].to_numpy(dtype=float)
    points = np.column_stack([steps, values])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    state = run["state"].to_numpy()[:-1]
    seg_colors = [UNDECODED if np.isnan(s) else colors[int(s)] for s in state]
    return segments, seg_colors


def plot_trajectories(
    trajectories: pd.DataFrame,
    states: pd.DataFrame,
    features: list[str],
    convergence: dict,
    training_map: dict,
    setting: str,
) -> Figure:
    """trajectories.png: every run's metrics over steps, coloured by decoded state.

    convergence: ``{column, threshold[, direction]}``, or empty (no convergence panel).
    """
    column = convergence["column"] if convergence else None
    panels = ([column] if column else []) + [f for f in features if f != column]
    table = trajectories.merge(states[["seed", "step", "state"]], on=["seed", "step"], how="left")
    table = table.sort_values(["seed", "step"], kind="stable")
    colors = state_colors(training_map["n_states"])
    n_cols = min(4, math.ceil(math.sqrt(len(panels))))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(3.4 * n_cols, 2.5 * n_rows + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    runs = [run for _, run in table.groupby("seed")]
    for ax, name in zip(axes, panels, strict=False):
        segments, seg_colors = [], []
        for run in runs:
            s, c = _state_segments(run, name, colors)
            segments.append(s)
            seg_colors += c
        lines = LineCollection(np.concatenate(segments), colors=seg_colors, lw=0.9, alpha=0.7)
        lines.set_rasterized(True)
        ax.add_collection(lines)
        ax.autoscale_view()
        if name == column:
            ax.axhline(convergence["threshold"], color=INK, ls="--", lw=0.8)
            ax.set_title(f"{name} (converged: {rule_text(convergence)})", fontsize=9)
        else:
            ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = _state_handles(training_map, colors, undecoded=table["state"].isna().any())
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 9),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        f"{setting}: {table['seed'].nunique()} runs coloured by decoded state",
        fontsize=12,
        weight="bold",
    )
    return fig


def _state_handles(training_map: dict, colors, undecoded: bool) -> list[Line2D]:
    """Legend entries of the visited states in training order (with their kind), and of
    the checkpoints no state was decoded for, if any."""
    kinds = {"detour": " (detour)", "dead_end": " (dead end)"}
    handles = [
        Line2D(
            [], [], color=colors[s["id"]], lw=3, label=f"S{s['id']}" + kinds.get(s.get("kind"), "")
        )
        for s in sorted(training_map["states"], key=lambda s: s["order"])
        if s["runs_visiting"] > 0
    ]
    if undecoded:
        handles.append(Line2D([], [], color=UNDECODED, lw=3, label="not decoded"))
    return handles


def _visited_detour(runs: pd.DataFrame, detours: pd.DataFrame) -> np.ndarray:
    ids = sorted(detour_states(detours))
    columns = [f"state{k}" for k in ids if f"state{k}" in runs.columns]
    if not columns:
        return np.zeros(len(runs), dtype=bool)
    return (runs[columns].fillna(0) > 0).any(axis=1).to_numpy()


def plot_convergence(
    runs: pd.DataFrame, detours: pd.DataFrame, regression: dict, setting: str
) -> Figure:
    """convergence.png: histogram of convergence times; censored runs stacked, hatched."""
    runs = runs[runs["in_regression"]].reset_index(drop=True)
    via = _visited_detour(runs, detours)
    censored = runs["censored"].to_numpy(dtype=bool)
    steps = runs["convergence_step"].to_numpy(dtype=float)
    groups = [
        (steps[~censored & ~via], PALETTE[0], "converged", None),
        (steps[~censored & via], DETOUR, "converged, visited a detour", None),
        (steps[censored], "white", "censored (never crossed; last step)", "////"),
    ]
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    if len(steps) and np.ptp(steps) == 0:  # one value: a bar of readable width around it
        half = max(1.0, 0.05 * abs(steps[0]))
        edges = steps[0] + np.array([-half, half])
        ax.set_xlim(steps[0] - 6 * half, steps[0] + 6 * half)
    else:
        edges = np.histogram_bin_edges(steps, bins=min(30, max(5, len(steps) // 2)))
    bottom = np.zeros(len(edges) - 1)
    for values, color, label, hatch in groups:
        if len(values) == 0:
            continue
        counts, _ = np.histogram(values, bins=edges)
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            bottom=bottom,
            align="edge",
            color=color,
            ec=INK if hatch else "white",
            lw=0.6,
            hatch=hatch,
            label=f"{label} ({len(values)})",
        )
        bottom += counts
    conv = regression.get("convergence", {})
    rule = rule_text(conv) if conv else "first value past the threshold"
    ax.set_xlabel(f"convergence step ({rule})")
    ax.set_ylabel("runs")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(0, max(bottom.max(initial=1) * 1.3, 1))  # headroom for the legend
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    excluded = regression.get("excluded_runs") or []
    note = f" \u00b7 {len(excluded)} runs excluded from the HMM" if excluded else ""
    unmeasured = regression.get("unmeasured_runs") or []
    note += f" \u00b7 {len(unmeasured)} without a convergence value" if unmeasured else ""
    ax.set_title(f"{len(runs)} runs, {int(censored.sum())} censored{note}", fontsize=9, color=INK)
    fig.suptitle(f"{setting}: convergence time", fontsize=12, weight="bold")
    return fig


def plot_no_convergence(regression: dict, setting: str) -> Figure:
    """convergence.png of a setting without a convergence column: why there is none."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    reason = textwrap.fill(str(regression.get("reason")), 60)
    ax.text(0.5, 0.5, f"no convergence times:\n{reason}", transform=ax.transAxes,
            ha="center", va="center", fontsize=10, color=INK)  # fmt: skip
    fig.suptitle(f"{setting}: convergence time", fontsize=12, weight="bold")
    return fig


def plot_coefficients(
    detours: pd.DataFrame, regression: dict, training_map: dict, setting: str
) -> Figure:
    """coefficients.png: per-state delay vs the average run, 95% confidence intervals."""
    order = [k for k in training_map["order"] if k in set(detours["state"])]
    table = detours.set_index("state").loc[order]
    colors = state_colors(training_map["n_states"])
    fig = Figure(figsize=(max(5.0, 1.0 * len(order) + 2.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0, color=INK, lw=0.8)
    x = np.arange(len(order))
    n_runs = regression.get("n_runs", 0)
    for i, (k, row) in enumerate(table.iterrows()):
        if np.isnan(row["coefficient"]):
            continue
        detour, dead = bool(row["is_detour"]), row.get("kind") == "dead_end"
        ax.errorbar(
            i,
            row["coefficient"],
            yerr=1.96 * row["std_error"],
            fmt="o",
            ms=9,
            color=colors[k],
            mec=DETOUR if detour else "white",
            mew=2.5 if detour else 1,
            ecolor=DETOUR if detour else colors[k],
            elinewidth=2,
            capsize=5,
        )
        label = f"p={row['p_value']:.1g}" + ("\nDETOUR" if detour else "\ndead end" if dead else "")
        ax.annotate(
            label,
            (i, row["coefficient"]),
            xytext=(10, 0),
            textcoords="offset points",
            fontsize=7.5,
            va="center",
            color=DETOUR if detour else INK,
        )
    ax.set_xticks(x, [f"S{k}\n{int(table.loc[k, 'runs_visiting'])}/{n_runs} runs" for k in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel("delay vs average run (steps)")
    ax.grid(axis="y", alpha=0.3)
    if regression.get("r2") is None:
        reason = textwrap.fill(str(regression.get("reason")), 40)
        ax.text(0.5, 0.5, f"regression not fitted:\n{reason}", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color=DETOUR)  # fmt: skip
        ax.set_yticks([])
        ax.set_title("no coefficients to show", fontsize=9)
    else:
        ax.set_title(regression_line(regression) + " \u00b7 bars: 95% CI", fontsize=9)
    fig.suptitle(f"{setting}: convergence delay by state", fontsize=12, weight="bold")
    return fig


def _ecdf(ax, runs: pd.DataFrame, color: str, label: str) -> None:
    """Fraction of runs converged by each step; censored runs never count and are marked."""
    runs = runs[runs["in_regression"]]
    steps = np.sort(runs.loc[~runs["censored"], "convergence_step"].to_numpy(dtype=float))
    fraction = np.arange(1, len(steps) + 1) / max(len(runs), 1)
    ax.step(np.r_[steps[:1], steps], np.r_[0.0, fraction], where="post", color=color, lw=2,
            label=f"{label} ({len(steps)}/{len(runs)} converged)")  # fmt: skip
    censored = runs.loc[runs["censored"], "convergence_step"].to_numpy(dtype=float)
    ax.plot(censored, np.full(len(censored), fraction[-1] if len(fraction) else 0.0), "x",
            color=color, ms=8, mew=2)  # fmt: skip


def plot_comparison(first: dict, second: dict, pair: dict) -> Figure:
    """Two settings side by side: maps, convergence times and the summary numbers.

    first, second: ``{"name", "map", "detours", "regression", "runs"}`` (runs: the per-run
    table of trainmap.maps.detours.analyze_detours); pair: from
    trainmap.figures.summary.comparison_pairs (``switch``, ``differences``).
    """
    switch, differences = pair["switch"], pair["differences"]
    fig = Figure(figsize=(13, 8), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.3, 1])
    for column, setting in enumerate((first, second)):
        ax = fig.add_subplot(grid[0, column])
        draw_map(ax, setting["map"], setting["detours"], compact=True)
        value = json.dumps(differences[switch][column])
        ax.set_title(f"{setting['name']}: {switch} = {value}", fontsize=10, weight="bold")
    ax = fig.add_subplot(grid[1, 0])
    for color, setting in zip((PALETTE[0], PALETTE[1]), (first, second), strict=True):
        _ecdf(ax, setting["runs"], color, setting["name"])
    ax.set_xlabel("convergence step")
    ax.set_ylabel("fraction of runs converged")
    ax.set_ylim(0, 1.05)
    ax.set_title("convergence time (\u00d7 = censored run, at its last step)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax = fig.add_subplot(grid[1, 1])
    ax.axis("off")
    rows = [headline(s["map"], s["detours"], s["regression"]) for s in (first, second)]
    keys = [k for k in rows[0] if k != "note"]
    table = ax.table(
        cellText=[[k, rows[0][k], rows[1][k]] for k in keys],
        colLabels=["", first["name"], second["name"]],
        loc="center",
        cellLoc="center",
        colWidths=[0.3, 0.35, 0.35],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.45)
    for (row, column), cell in table.get_celld().items():
        cell.set_edgecolor("#DDDDDD")
        if row == 0 or column == 0:
            cell.set_text_props(weight="bold")
    others = [f"{k} {json.dumps(a)} vs {json.dumps(b)}" for k, (a, b) in differences.items()
              if k != switch]  # fmt: skip
    subtitle = f"also different: {', '.join(others)}" if others else f"only {switch} differs"
    fig.suptitle(f"{first['name']} vs {second['name']} ({subtitle})", fontsize=12, weight="bold")
    return fig
