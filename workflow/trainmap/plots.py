"""Figures of one setting (map, trajectories, convergence, coefficients) and comparisons.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no global
state). Every figure colours state k the same way (``state_colors``) and marks detour
states in ``DETOUR`` red, so the map, the trajectories and the coefficients read together.
"""

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Patch
from matplotlib.textpath import TextToPath

from trainmap.io import atomic_path
from trainmap.summary import headline

# Qualitative palette without red, which is reserved for detours.
PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
    "#2F4B7C",
    "#A0CBE8",
    "#86BCB6",
]
DETOUR = "#C44E52"
INK = "#333333"
UNDECODED = "#D0D0D0"
NODE_RADIUS = 0.34
TEXT_TO_PATH = TextToPath()  # measures text without a figure
ROW = 1.9  # vertical offset of states most runs skip (data units, about inches)


def state_colors(n_states: int) -> list[str]:
    return [PALETTE[k % len(PALETTE)] for k in range(n_states)]


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")


def signed(value: float, digits: int = 2) -> str:
    """'+0.59' / '−0.59' with a typographic minus."""
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def feature_change(name: str, delta: float) -> str:
    """'↑ l2 +0.59' / '↓ l2 −0.59' ('· l2 +0.00' for no change at this precision)."""
    arrow = "\u2191" if delta >= 0.005 else "\u2193" if delta <= -0.005 else "\u00b7"
    return f"{arrow} {name} {signed(delta)}"


def _detour_ids(detours: pd.DataFrame | None) -> set[int]:
    if detours is None or detours.empty:
        return set()
    return set(detours.loc[detours["is_detour"].astype(bool), "state"].astype(int))


def _text_width(lines: list[str], fontsize: float) -> float:
    """Width in inches of a block of text in the default font."""
    font = FontProperties(size=fontsize)
    widths = [TEXT_TO_PATH.get_text_width_height_descent(line, font, False)[0] for line in lines]
    return max(widths, default=0.0) / 72


def _column_width(training_map: dict, compact: bool) -> float:
    """Distance between consecutive states so that edge labels leave the arrows visible and
    node labels do not touch (data units; map.png draws one unit as about one inch)."""
    labels = [_edge_lines(e, compact) for e in training_map["edges"] if e["source"] != e["target"]]
    nodes = [_node_lines(s, training_map["n_runs"], None, False) for s in training_map["states"]]
    edge = max((_text_width(lines, 7.5) for lines in labels), default=0)
    node = max((_text_width(lines, 8) for lines in nodes), default=0)
    return max(2.6, edge + 2 * NODE_RADIUS + 1.0, node + 0.25)


def _layout(training_map: dict, column: float = 3.0) -> dict[int, tuple[float, float]]:
    """Node positions: x = training order; y = 0 for states most runs visit (the main
    road), the others alternately above and below it, so that the road stays straight and
    the runs that leave it are seen to leave it."""
    n_runs = training_map["n_runs"]
    states = {s["id"]: s for s in training_map["states"]}
    visited = [k for k in training_map["order"] if states[k]["runs_visiting"] > 0]
    positions, side = {}, 1
    for i, k in enumerate(visited):
        y = 0.0
        if 2 * states[k]["runs_visiting"] <= n_runs:
            y, side = side * ROW, -side
        positions[k] = (i * column, y)
    return positions


def _edge_middle(p, q, rad: float) -> np.ndarray:
    """Midpoint of an arc3 edge from p to q (equal-aspect axes): the quadratic Bezier at
    t = 1/2, i.e. halfway between the chord's middle and arc3's control point."""
    p, q = np.asarray(p), np.asarray(q)
    d = q - p
    return (p + q) / 2 + 0.5 * rad * np.array([d[1], -d[0]])


def _edge_rad(p, q, positions: dict, source: int, target: int) -> float:
    """Curvature of an edge: forward edges are straight unless they would pass through
    another node (then they arc above it); backward edges arc below the row of nodes."""
    p, q = np.asarray(p), np.asarray(q)
    span = float(np.hypot(*(q - p)))
    if q[0] < p[0]:
        return -min(0.6, 2.6 / span)  # the arc dips at most 1.3 below the chord
    for k, r in positions.items():
        if k in (source, target):
            continue
        r = np.asarray(r)
        t = np.clip(np.dot(r - p, q - p) / max(np.dot(q - p, q - p), 1e-9), 0, 1)
        if np.hypot(*(p + t * (q - p) - r)) < 2.2 * NODE_RADIUS:
            return -min(0.35, 2.0 / span)  # the arc rises at most 1 above the chord
    return 0.0


def _draw_edges(ax, training_map: dict, positions, nodes, detour_ids, compact: bool) -> list[float]:
    """Draw the non-self-loop edges; returns the lowest and highest y of their labels."""
    n_runs = max(training_map["n_runs"], 1)
    extent = []
    for edge in training_map["edges"]:
        source, target = edge["source"], edge["target"]
        if source == target:
            continue  # self-loops are written under their node ("stay p")
        p, q = positions[source], positions[target]
        rad = _edge_rad(p, q, positions, source, target)
        color = DETOUR if target in detour_ids or source in detour_ids else INK
        width = 0.8 + 5.5 * edge["runs"] / n_runs
        ax.add_patch(
            FancyArrowPatch(
                p,
                q,
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>,head_length=0.55,head_width=0.3",
                mutation_scale=10 + 1.5 * width,
                linewidth=width,
                color=color,
                alpha=0.85,
                patchA=nodes[source],  # clip the arrow at the node circles
                patchB=nodes[target],
                shrinkA=2,
                shrinkB=3,
                zorder=1,
            )
        )
        middle, lines, fontsize = _edge_middle(p, q, rad), _edge_lines(edge, compact), 7.5
        ax.text(
            *middle,
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=fontsize,
            color=color,
            linespacing=1.25,
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": color, "lw": 0.6},
            zorder=4,
        )
        half = len(lines) * fontsize * 1.25 / 72 / 2 + 0.1
        extent += [middle[1] - half, middle[1] + half]
    return extent


def _edge_lines(edge: dict, compact: bool) -> list[str]:
    lines = [f"{_plural(edge['runs'], 'run')} \u00b7 p={edge['probability']:.2g}"]
    if not compact:
        lines += [feature_change(f, d) for f, d in edge["feature_changes"].items()]
    return lines


def _node_lines(state: dict, n_runs: int, stay: dict | None, detour: bool) -> list[str]:
    lines = ["DETOUR"] if detour else []
    lines.append(f"{state['runs_visiting']}/{n_runs} runs")
    if stay is not None:
        lines[-1] += f" \u00b7 stay {stay['probability']:.2f}"
    lines += state["top_features"]
    ends = [f"start of {state['initial_runs']}"] if state["initial_runs"] else []
    ends += [f"end of {state['final_runs']}"] if state["final_runs"] else []
    if ends:
        lines.append(" \u00b7 ".join(ends))
    return lines


def draw_map(ax, training_map: dict, detours: pd.DataFrame | None = None, compact=False) -> None:
    """Draw the training map on ``ax``: nodes in training order, edge width by runs.

    compact: leave out the edges' feature changes (for side-by-side comparisons).
    """
    states = {s["id"]: s for s in training_map["states"]}
    colors = state_colors(training_map["n_states"])
    detour_ids = _detour_ids(detours)
    column = _column_width(training_map, compact)
    positions = _layout(training_map, column)
    loops = {e["source"]: e for e in training_map["edges"] if e["source"] == e["target"]}
    nodes = {}
    for k, (x, y) in positions.items():
        detour = k in detour_ids
        nodes[k] = Circle(
            (x, y),
            NODE_RADIUS,
            fc=colors[k],
            ec=DETOUR if detour else "white",
            lw=3.5 if detour else 1.5,
            zorder=3,
        )
        ax.add_patch(nodes[k])
        ax.text(x, y, f"S{k}", ha="center", va="center", color="white", weight="bold",
                fontsize=10, zorder=5)  # fmt: skip
        below = y <= 0
        ax.text(
            x,
            y - NODE_RADIUS - 0.12 if below else y + NODE_RADIUS + 0.12,
            "\n".join(_node_lines(states[k], training_map["n_runs"], loops.get(k), detour)),
            ha="center",
            va="top" if below else "bottom",
            fontsize=7 if compact else 8,
            color=DETOUR if detour else INK,
            linespacing=1.3,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=5,
        )
    labels = _draw_edges(ax, training_map, positions, nodes, detour_ids, compact)
    xs = [x for x, _ in positions.values()] or [0.0]
    ys = [y for _, y in positions.values()] or [0.0]
    ax.set_xlim(min(xs) - column / 2, max(xs) + column / 2)
    # Room for the node labels (under the road and the states below it, over the states
    # above it) and for the edge labels.
    low, high = min(ys) - NODE_RADIUS - 1.5, max(ys) + NODE_RADIUS + (1.5 if max(ys) > 0 else 0.3)
    ax.set_ylim(min([low, *labels]), max([high, *labels]))
    ax.set_aspect("equal")
    ax.axis("off")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _regression_line(regression: dict) -> str:
    if regression.get("r2") is None:
        return f"regression not interpretable: {regression.get('reason')}"
    text = f"R\u00b2 = {regression['r2']:.2f}, F-test p = {regression['f_pvalue']:.2g}"
    if not regression["significant"]:
        text += f" (not significant at \u03b1 = {regression['alpha']:g})"
    return text


def plot_map(training_map: dict, detours: pd.DataFrame, regression: dict, setting: str) -> Figure:
    """map.png: the training map with detour states highlighted and a legend."""
    fig = Figure()
    ax = fig.add_axes((0, 0, 1, 1))
    draw_map(ax, training_map, detours)
    # Axes placed by hand so that one data unit is one inch: the gaps that _column_width
    # sized for the labels are kept exactly. Margins: titles above, legend below.
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    width, height, top, bottom = x1 - x0, y1 - y0, 0.7, 0.7
    fig_width, fig_height = max(7.0, width + 0.4), height + top + bottom
    fig.set_size_inches(fig_width, fig_height)
    ax.set_position(
        ((fig_width - width) / 2 / fig_width, bottom / fig_height, width / fig_width,
         height / fig_height)
    )  # fmt: skip
    detour_ids = sorted(_detour_ids(detours))
    kind = "forking" if training_map["forking"] else "a single path"
    found = ", ".join(f"S{k}" for k in detour_ids) if detour_ids else "none"
    fig.suptitle(
        f"{setting}: training map \u2014 {_plural(training_map['n_states'], 'state')}, "
        f"{_plural(training_map['n_runs'], 'run')}, {kind}",
        fontsize=12,
        weight="bold",
        y=1 - 0.08 / fig_height,
        va="top",
    )
    subtitle = f"detour states: {found} \u00b7 {_regression_line(regression)}"
    if len(subtitle) > 90:
        subtitle = f"detour states: {found}\n{_regression_line(regression)}"
    ax.set_title(subtitle, fontsize=9)
    unvisited = [s["id"] for s in training_map["states"] if s["runs_visiting"] == 0]
    n_runs = training_map["n_runs"]
    examples = sorted({max(1, round(f * n_runs)) for f in (1.0, 0.5, 0.1)}, reverse=True)
    handles = [
        Line2D([], [], color=INK, lw=0.8 + 5.5 * n / max(n_runs, 1), label=_plural(n, "run"))
        for n in examples
    ]
    handles.append(Patch(fc="white", ec=DETOUR, lw=2.5, label="detour state"))
    handles.append(Line2D([], [], ls="", label="\u2191/\u2193 feature: change of state means (z)"))
    if unvisited:
        names = ", ".join(f"S{k}" for k in unvisited)
        handles.append(Line2D([], [], ls="", label=f"never visited: {names}"))
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.1 / fig_height),
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    return fig


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
    """trajectories.png: every run's metrics over steps, coloured by decoded state."""
    column = convergence["column"]
    panels = [column] + [f for f in features if f != column]
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
            ax.set_title(f"{name} (threshold {convergence['threshold']:g})", fontsize=9)
        else:
            ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    detour_ids = {s["id"] for s in training_map["states"] if s.get("is_detour")}
    handles = [
        Line2D(
            [],
            [],
            color=colors[s["id"]],
            lw=3,
            label=f"S{s['id']}" + (" (detour)" if s["id"] in detour_ids else ""),
        )
        for s in sorted(training_map["states"], key=lambda s: s["order"])
        if s["runs_visiting"] > 0
    ]
    if table["state"].isna().any():
        handles.append(Line2D([], [], color=UNDECODED, lw=3, label="not decoded"))
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


def _visited_detour(runs: pd.DataFrame, detours: pd.DataFrame) -> np.ndarray:
    ids = sorted(_detour_ids(detours))
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
    ax.set_xlabel(f"convergence step (first {conv.get('column', '?')} > {conv.get('threshold')})")
    ax.set_ylabel("runs")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(0, max(bottom.max(initial=1) * 1.3, 1))  # headroom for the legend
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    excluded = regression.get("excluded_runs") or []
    note = f" \u00b7 {len(excluded)} runs excluded from the HMM" if excluded else ""
    ax.set_title(f"{len(runs)} runs, {int(censored.sum())} censored{note}", fontsize=9, color=INK)
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
        detour = bool(row["is_detour"])
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
        label = f"p={row['p_value']:.1g}" + ("\nDETOUR" if detour else "")
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
        ax.set_title(_regression_line(regression) + " \u00b7 bars: 95% CI", fontsize=9)
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
    table of trainmap.detours.analyze_detours); pair: from
    trainmap.summary.comparison_pairs (``switch``, ``differences``).
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
