"""function_space.png and function_space.html: every run's trajectory in the first two
principal components of its probe losses, coloured by decoded state (the map's colours),
detour states ringed red, each run's start (open circle) and end (filled square) shown.
"""

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from trainmap.figures.curves_html import display_rows
from trainmap.figures.html import page
from trainmap.figures.style import DETOUR, INK, UNDECODED, plural, state_colors

POINTS_PER_RUN = 300  # display only (function_space.parquet keeps every checkpoint)


def _runs(table: pd.DataFrame):
    for seed, run in table.sort_values(["seed", "step"], kind="stable").groupby("seed"):
        state = run["state"].to_numpy(dtype=float, na_value=np.nan)
        yield int(seed), run, state


def _name(code: int) -> str:
    return "undecoded" if code < 0 else f"S{code}"


def _axis_label(i: int, ratios: list[float]) -> str:
    return f"PC{i + 1} ({100 * ratios[i]:.1f}% of variance)" if i < len(ratios) else f"PC{i + 1}"


def plot_function_space(
    table: pd.DataFrame, ratios: list[float], n_states: int, detours: set[int], setting: str
) -> Figure:
    """function_space.png. table: ``seed, step, pc1, pc2.., state``; ratios: explained
    variance ratio per component; detours: the detour states' ids."""
    colors = state_colors(n_states)
    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.add_subplot()
    y_name = "pc2" if "pc2" in table else "pc1"
    segments, seg_colors, widths, starts, ends = [], [], [], [], []
    for _, run, state in _runs(table):
        points = run[["pc1", y_name]].to_numpy()
        if y_name == "pc1":
            points = np.column_stack([run["step"].to_numpy(), points[:, 0]])
        segments.append(np.stack([points[:-1], points[1:]], axis=1))
        for s in state[:-1]:
            seg_colors.append(UNDECODED if np.isnan(s) else colors[int(s)])
            widths.append(2.2 if not np.isnan(s) and int(s) in detours else 0.9)
        starts.append(points[0])
        ends.append(points[-1])
    if segments:
        lines = LineCollection(np.concatenate(segments), colors=seg_colors, linewidths=widths,
                               alpha=0.75)  # fmt: skip
        ax.add_collection(lines)
    detour_rows = table[table["state"].isin(list(detours))]
    if len(detour_rows):
        ax.scatter(detour_rows["pc1"], detour_rows[y_name], s=10, facecolors="none",
                   edgecolors=DETOUR, linewidths=0.6, zorder=3)  # fmt: skip
    starts, ends = np.array(starts).reshape(-1, 2), np.array(ends).reshape(-1, 2)
    ax.scatter(*starts.T, s=30, facecolors="white", edgecolors=INK, zorder=4)
    ax.scatter(*ends.T, s=30, marker="s", color=INK, zorder=4)
    ax.autoscale_view()
    ax.set_xlabel(_axis_label(0, ratios))
    ax.set_ylabel(_axis_label(1, ratios) if y_name == "pc2" else "step")
    ax.grid(alpha=0.25, lw=0.5)
    n_runs = table["seed"].nunique()
    ax.set_title(
        f"{setting}: function space \u2014 {plural(n_runs, 'run')}, losses on the probe set, "
        "PCA over all runs",
        fontsize=10,
    )
    visited = sorted(int(s) for s in table["state"].dropna().unique())
    handles = [Line2D([], [], color=colors[k], lw=2, label=f"S{k}") for k in visited]
    if len(detour_rows):
        handles.append(
            Line2D([], [], ls="", marker="o", mfc="none", mec=DETOUR, label="in a detour state")
        )
    handles += [
        Line2D([], [], ls="", marker="o", mfc="white", mec=INK, label="start"),
        Line2D([], [], ls="", marker="s", color=INK, label="end"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="best", ncols=2)
    return fig


def function_space_page(
    table: pd.DataFrame, ratios: list[float], n_states: int, detours: set[int], setting: str
) -> str:
    """function_space.html: the same view, hover for seed, step and state; runs thinned
    to ``POINTS_PER_RUN`` checkpoints for display (keeping every change of state)."""
    colors = state_colors(n_states)
    y_name = "pc2" if "pc2" in table else "pc1"
    traces, starts, ends = _state_segments(table, n_states, y_name)
    fig = go.Figure()
    for k, t in traces.items():
        if not t["x"]:
            continue
        detour = k in detours
        fig.add_trace(
            go.Scatter(
                x=t["x"], y=t["y"], mode="lines", customdata=t["customdata"],
                hovertemplate="seed %{customdata[0]}<br>step %{customdata[1]}<br>"
                "state %{customdata[2]}<extra></extra>",
                name=("undecoded" if k < 0 else f"S{k}") + (" (detour)" if detour else ""),
                line={"color": UNDECODED if k < 0 else colors[k], "width": 3 if detour else 1.3},
                opacity=0.8,
            )
        )  # fmt: skip
    for label, points, symbol in (("start", starts, "circle-open"), ("end", ends, "square")):
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name=label,
                marker={"symbol": symbol, "color": INK, "size": 8},
                hovertext=[f"{label} of seed {p[2]}" for p in points], hoverinfo="text",
            )
        )  # fmt: skip
    fig.update_layout(
        title={"text": f"{setting}: function space (losses on the probe set, PCA)", "x": 0.02},
        width=860, height=640, autosize=False, hovermode="closest",
        xaxis={"title": {"text": _axis_label(0, ratios)}, "gridcolor": "#eee"},
        yaxis={"title": {"text": _axis_label(1, ratios) if y_name == "pc2" else "pc1"},
               "gridcolor": "#eee"},
        plot_bgcolor="white", paper_bgcolor="white", font={"color": INK},
    )  # fmt: skip
    explained = ", ".join(f"PC{i + 1} {100 * r:.1f}%" for i, r in enumerate(ratios))
    panel = (
        f"<h2>{html.escape(setting)}: function space</h2><p class='note'>Each run's "
        "per-example losses on the fixed probe set at every checkpoint, projected on the "
        f"principal components fit over all runs. Explained variance: {explained}. Thick "
        "lines: detour states. Display thinned; function_space.parquet has every "
        "checkpoint.</p>"
    )
    return page(f"{setting}: function space", fig, panel, {}, "")


def _state_segments(table: pd.DataFrame, n_states: int, y_name: str) -> tuple[dict, list, list]:
    """Every run's thinned path cut into one line trace per state (-1: undecoded; None
    between a run's separate visits), and each run's first and last point with its seed."""
    traces = {k: {"x": [], "y": [], "customdata": []} for k in [*range(n_states), -1]}
    starts, ends = [], []
    for seed, run, state in _runs(table):
        code = np.where(np.isnan(state), -1, np.nan_to_num(state)).astype(int)
        rows = display_rows(code, POINTS_PER_RUN)
        x, y, steps = (run[c].to_numpy()[rows] for c in ("pc1", y_name, "step"))
        x, y = np.round(x, 5), np.round(y, 5)
        shown = code[rows]
        last = None  # (state, index) where the trace's previous segment ended
        for j in range(1, len(rows)):
            k = int(shown[j - 1])  # a segment takes the state of its first checkpoint
            t = traces[k]
            if last != (k, j - 1):
                if t["x"]:
                    for key in t:  # a gap between this run's visits to k
                        t[key].append(None)
                t["x"].append(float(x[j - 1]))
                t["y"].append(float(y[j - 1]))
                t["customdata"].append([seed, int(steps[j - 1]), _name(shown[j - 1])])
            t["x"].append(float(x[j]))
            t["y"].append(float(y[j]))
            t["customdata"].append([seed, int(steps[j]), _name(shown[j])])
            last = (k, j)
        starts.append((x[0], y[0], seed))
        ends.append((x[-1], y[-1], seed))
    return traces, starts, ends
