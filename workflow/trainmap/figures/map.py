"""The training map figure: states laid out in training order, edges by runs taking them.

Built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no global state); layout is
our own (no external ``dot``): columns by mean first-visit order, states most runs skip
on a second row. Detour states get a red ring, dead ends (states only runs that never
converge visit) a dashed grey one, and the arrows into them the same look. Transition
probabilities are written "P(S2→S0) = 0.14" (self-loops under their node), so that they
are not read as the regression's p-values. The map of one run (map.json ``phases``)
writes under each state the run's stays there (steps and checkpoints: the dwell) in
place of the runs visiting it.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Patch
from matplotlib.textpath import TextToPath

from trainmap.figures.style import (
    DEAD_END,
    DETOUR,
    INK,
    dead_end_states,
    detour_states,
    feature_change,
    plural,
    regression_line,
    state_colors,
    transition_label,
)
from trainmap.maps.phases import dwell_lines

NODE_RADIUS = 0.34
TEXT_TO_PATH = TextToPath()  # measures text without a figure
ROW = 1.9  # vertical offset of states most runs skip (data units, about inches)


def _text_width(lines: list[str], fontsize: float) -> float:
    """Width in inches of a block of text in the default font."""
    font = FontProperties(size=fontsize)
    widths = [TEXT_TO_PATH.get_text_width_height_descent(line, font, False)[0] for line in lines]
    return max(widths, default=0.0) / 72


def _column_width(training_map: dict, compact: bool) -> float:
    """Distance between consecutive states so that edge labels leave the arrows visible and
    node labels do not touch (data units; map.png draws one unit as about one inch)."""
    labels = [_edge_lines(e, compact) for e in training_map["edges"] if e["source"] != e["target"]]
    loops = {e["source"]: e for e in training_map["edges"] if e["source"] == e["target"]}
    # Measured with the widest kind title, so that the width holds whatever each kind is.
    dwell = dwell_lines(training_map.get("phases"))  # the map of one run
    nodes = [
        _node_lines(s, training_map["n_runs"], loops.get(s["id"]), "dead_end", dwell.get(s["id"]))
        for s in training_map["states"]
    ]
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


def _bezier(p, q, rad: float, t: float) -> np.ndarray:
    """Point at parameter t of an arc3 edge from p to q: a quadratic Bezier whose control
    point is the chord's middle moved by rad times the chord, perpendicular to it."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    d = q - p
    control = (p + q) / 2 + rad * np.array([d[1], -d[0]])
    return (1 - t) ** 2 * p + 2 * t * (1 - t) * control + t**2 * q


def _box(centre, width: float, height: float) -> tuple[float, float, float, float]:
    return (centre[0] - width / 2, centre[1] - height / 2, centre[0] + width / 2,
            centre[1] + height / 2)  # fmt: skip


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


LABEL_TS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.25, 0.75, 0.2, 0.8)  # positions tried along an edge


def _place_label(p, q, rad, width, height, taken, circles) -> np.ndarray:
    """Centre of an edge label: the edge's middle unless its box would overlap an already
    placed label box or a node, then another point along the edge, then the middle nudged
    up or down; the first candidate that is free of both wins (else the middle)."""
    middle = _edge_middle(p, q, rad)
    candidates = [_bezier(p, q, rad, t) for t in LABEL_TS]
    candidates += [middle + [0, s * k * height / 2] for k in range(1, 7) for s in (1, -1)]
    for centre in candidates:
        box = _box(centre, width, height)
        if not any(_overlaps(box, other) for other in taken) and not any(
            _overlaps(box, circle) for circle in circles
        ):
            return centre
    return middle


def _edge_look(source: int, target: int, detour_ids: set, dead_ids: set) -> tuple[str, str]:
    """(colour, line style) of an edge: red into or out of a detour, dashed grey into a
    dead end, else ink."""
    if target in detour_ids or source in detour_ids:
        return DETOUR, "-"
    if target in dead_ids:
        return DEAD_END, "--"
    return INK, "-"


def _draw_edges(ax, training_map: dict, geometry: dict, nodes: dict, compact: bool) -> list:
    """Draw the non-self-loop edges as ``map_geometry`` laid them out; returns the lowest
    and highest y of their labels."""
    positions, extent, taken = geometry["positions"], [], []
    circles = [
        _box(xy, 2 * NODE_RADIUS + 0.05, 2 * NODE_RADIUS + 0.05) for xy in positions.values()
    ]
    # Labels of the edges most runs take are placed first and keep the edge's middle.
    for edge in sorted(training_map["edges"], key=lambda e: -e["runs"]):
        source, target = edge["source"], edge["target"]
        if source == target:
            continue  # self-loops are written under their node ("P(Sk→Sk) = ...")
        look = geometry["edges"][(source, target)]
        p, q, color = positions[source], positions[target], look["color"]
        ax.add_patch(
            FancyArrowPatch(
                p,
                q,
                connectionstyle=f"arc3,rad={look['rad']}",
                arrowstyle="-|>,head_length=0.55,head_width=0.3",
                mutation_scale=10 + 1.5 * look["width"],
                linewidth=look["width"],
                linestyle="--" if look["dashed"] else "-",
                color=color,
                alpha=0.85,
                patchA=nodes[source],  # clip the arrow at the node circles
                patchB=nodes[target],
                shrinkA=2,
                shrinkB=3,
                zorder=1,
            )
        )
        lines, fontsize = _edge_lines(edge, compact), 7.5
        # Label box in data units (about inches): text plus the round box's padding.
        box_w = _text_width(lines, fontsize) + 2 * 0.25 * fontsize / 72 + 0.12
        box_h = len(lines) * fontsize * 1.25 / 72 + 2 * 0.25 * fontsize / 72 + 0.12
        middle = _place_label(p, q, look["rad"], box_w, box_h, taken, circles)
        taken.append(_box(middle, box_w, box_h))
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
    probability = transition_label(edge["source"], edge["target"], edge["probability"])
    lines = [f"{plural(edge['runs'], 'run')} \u00b7 {probability}"]
    if edge.get("support") is not None:  # stability.resamples
        lines.append(f"support {edge['support']:.0%}")
    if not compact:
        lines += [feature_change(f, d) for f, d in edge["feature_changes"].items()]
    return lines


KIND_TITLES = {"detour": "DETOUR", "dead_end": "DEAD END"}
KIND_LOOK = {"detour": (DETOUR, DETOUR), "dead_end": (DEAD_END, DEAD_END)}  # (ring, text)


def kind_title(state: dict, kind: str) -> str:
    """'DETOUR', or with supports 'DETOUR (in 80% of resamples)'; a call too few
    resamples repeat (``uncertain``) gets a question mark: 'DETOUR? (in 30% ...)'."""
    title = KIND_TITLES[kind] + ("?" if state.get("uncertain") else "")
    support = state.get(f"{kind}_support")
    return title if support is None else f"{title} (in {support:.0%} of resamples)"


def _ring_style(state: dict, kind: str) -> str:
    """Dotted for an uncertain call, dashed for a dead end, else solid."""
    return ":" if state.get("uncertain") else "--" if kind == "dead_end" else "-"


def _node_lines(
    state: dict, n_runs: int, stay: dict | None, kind: str, dwell: list[str] | None = None
) -> list[str]:
    """Text under a node: its kind (and the call's support), runs visiting (or, for the
    map of one run, its stays there: ``dwell``), the state's support, P(stay), label
    features, starts/ends."""
    lines = [kind_title(state, kind)] if kind in KIND_TITLES else []
    lines += dwell or [f"{state['runs_visiting']}/{n_runs} runs"]
    if state.get("support") is not None:  # stability.resamples
        lines.append(f"support {state['support']:.0%}")
    if stay is not None:
        lines.append(transition_label(stay["source"], stay["target"], stay["probability"]))
    lines += state["top_features"]
    ends = [f"start of {state['initial_runs']}"] if state["initial_runs"] else []
    ends += [f"end of {state['final_runs']}"] if state["final_runs"] else []
    if ends:
        lines.append(" \u00b7 ".join(ends))
    return lines


def draw_map(ax, training_map: dict, detours: pd.DataFrame | None = None, compact=False) -> None:
    """Draw the training map on ``ax`` as ``map_geometry`` lays it out (the interactive
    page's layout too): nodes in training order, edge width by runs.

    compact: leave out the edges' feature changes (for side-by-side comparisons).
    """
    geometry = map_geometry(training_map, detours, compact=compact)
    nodes = _draw_nodes(ax, training_map, geometry, compact)
    labels = _draw_edges(ax, training_map, geometry, nodes, compact)
    ys = [y for _, y in geometry["positions"].values()] or [0.0]
    ax.set_xlim(*geometry["limits"][0])
    # Room for the node labels (under the road and the states below it, over the states
    # above it) and for the edge labels.
    low, high = min(ys) - NODE_RADIUS - 1.5, max(ys) + NODE_RADIUS + (1.5 if max(ys) > 0 else 0.3)
    ax.set_ylim(min([low, *labels]), max([high, *labels]))
    ax.set_aspect("equal")
    ax.axis("off")


def _draw_nodes(ax, training_map: dict, geometry: dict, compact: bool) -> dict[int, Circle]:
    """Draw each visited state's circle, name and the text under (or over) it."""
    states = {s["id"]: s for s in training_map["states"]}
    colors = state_colors(training_map["n_states"])
    nodes = {}
    for k, (x, y) in geometry["positions"].items():
        kind = geometry["kinds"][k]
        ring, text_color = KIND_LOOK.get(kind, ("white", INK))
        nodes[k] = Circle(
            (x, y),
            NODE_RADIUS,
            fc=colors[k],
            ec=ring,
            lw=3.5 if kind else 1.5,
            ls=_ring_style(states[k], kind),
            zorder=3,
        )
        ax.add_patch(nodes[k])
        ax.text(x, y, f"S{k}", ha="center", va="center", color="white", weight="bold",
                fontsize=10, zorder=5)  # fmt: skip
        below = y <= 0
        ax.text(
            x,
            y - NODE_RADIUS - 0.12 if below else y + NODE_RADIUS + 0.12,
            "\n".join(geometry["node_lines"][k]),
            ha="center",
            va="top" if below else "bottom",
            fontsize=7 if compact else 8,
            color=text_color,
            linespacing=1.3,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=5,
        )
    return nodes


def _names(states: set[int]) -> str:
    return ", ".join(f"S{k}" for k in sorted(states)) if states else "none"


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
    kind = "forking" if training_map["forking"] else "a single path"
    # Without a fitted regression (one run, no convergence column) no state was tested.
    found = _names(detour_states(detours)) if regression.get("r2") is not None else "not assessed"
    dead = dead_end_states(detours)
    fig.suptitle(
        f"{setting}: training map \u2014 {plural(training_map['n_states'], 'state')}, "
        f"{plural(training_map['n_runs'], 'run')}, {kind}",
        fontsize=12,
        weight="bold",
        y=1 - 0.08 / fig_height,
        va="top",
    )
    ax.set_title(_subtitle(training_map, regression, found, dead), fontsize=9)
    fig.legend(
        handles=_legend_handles(training_map, dead),
        loc="lower center",
        bbox_to_anchor=(0.5, 0.1 / fig_height),
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    return fig


def _subtitle(training_map: dict, regression: dict, found: str, dead: list) -> str:
    """map.png's line under the title: the calls, the regression and the support."""
    states_line = f"detour states: {found}" + (f" \u00b7 dead ends: {_names(dead)}" if dead else "")
    subtitle = f"{states_line} \u00b7 {regression_line(regression)}"
    if len(subtitle) > 90:
        subtitle = f"{states_line}\n{regression_line(regression)}"
    support = training_map.get("support")
    if support:
        picked = ", ".join(f"{k} ({n}\u00d7)" for k, n in support["n_states"].items())
        subtitle += (
            f"\nsupport: share of {support['resamples']} resamples (new splits and "
            f"restarts) finding each state, edge and call; alone they pick K = {picked}"
        )
    return subtitle


def _legend_handles(training_map: dict, dead: list) -> list:
    """map.png's legend: edge widths by runs, the state outlines, how to read the labels."""
    unvisited = [s["id"] for s in training_map["states"] if s["runs_visiting"] == 0]
    n_runs = training_map["n_runs"]
    examples = sorted({max(1, round(f * n_runs)) for f in (1.0, 0.5, 0.1)}, reverse=True)
    handles = [
        Line2D([], [], color=INK, lw=edge_width(n, n_runs), label=plural(n, "run"))
        for n in examples
    ]
    handles.append(Patch(fc="white", ec=DETOUR, lw=2.5, label="detour state"))
    if any(s.get("uncertain") for s in training_map["states"]):
        handles.append(
            Patch(fc="white", ec=DETOUR, lw=2.5, ls=":", label="call < 50% of resamples repeat")
        )
    if dead:
        handles.append(
            Patch(fc="white", ec=DEAD_END, lw=2.5, ls="--", label="dead end (no run converges)")
        )
    handles.append(Line2D([], [], ls="", label="\u2191/\u2193 feature: change of state means (z)"))
    handles.append(
        Line2D([], [], ls="", label="P(Si\u2192Sj): learned transition probability, not a p-value")
    )
    if unvisited:
        names = ", ".join(f"S{k}" for k in unvisited)
        handles.append(Line2D([], [], ls="", label=f"never visited: {names}"))
    return handles


def edge_width(runs: int, n_runs: int) -> float:
    """Line width in points of an edge that ``runs`` of ``n_runs`` runs take (as drawn)."""
    return 0.8 + 5.5 * runs / max(n_runs, 1)


def map_geometry(
    training_map: dict, detours: pd.DataFrame | None = None, samples: int = 25, compact=False
) -> dict:
    """Where everything goes on the map: ``draw_map`` (map.png) draws it, the interactive
    map (map_html.py) renders the same.

    Data units are map.png's (about inches). Returns ``positions`` {state: (x, y)} of the
    visited states, ``radius`` of a node, ``kinds`` {state: "detour" | "dead_end" | ""},
    ``node_lines`` {state: the text under the node}, ``limits`` ((x0, x1), (y0, y1)) and
    ``edges`` {(source, target): {points (samples, 2) along the drawn curve, its ``rad``
    (matplotlib's arc3 curvature), colour, dashed, width, lines}} for every edge between
    two states (self-loops have no curve: they are written under their node). compact:
    columns sized for labels without the edges' feature changes (``draw_map``'s).
    """
    detour_ids, dead_ids = detour_states(detours), dead_end_states(detours)
    column = _column_width(training_map, compact)
    positions = _layout(training_map, column)
    states = {s["id"]: s for s in training_map["states"]}
    loops = {e["source"]: e for e in training_map["edges"] if e["source"] == e["target"]}
    kinds = {
        k: "detour" if k in detour_ids else "dead_end" if k in dead_ids else "" for k in positions
    }
    dwell = dwell_lines(training_map.get("phases"))  # the map of one run
    node_lines = {
        k: _node_lines(states[k], training_map["n_runs"], loops.get(k), kinds[k], dwell.get(k))
        for k in positions
    }
    edges = {}
    for edge in training_map["edges"]:
        source, target = edge["source"], edge["target"]
        if source == target:
            continue
        p, q = positions[source], positions[target]
        rad = _edge_rad(p, q, positions, source, target)
        color, style = _edge_look(source, target, detour_ids, dead_ids)
        edges[(source, target)] = {
            "points": np.array([_bezier(p, q, rad, t) for t in np.linspace(0, 1, samples)]),
            "rad": rad,
            "color": color,
            "dashed": style == "--",
            "width": edge_width(edge["runs"], training_map["n_runs"]),
            "lines": _edge_lines(edge, compact=True),
        }
    xs = [x for x, _ in positions.values()] or [0.0]
    ys = [y for _, y in positions.values()] or [0.0]
    limits = (
        (min(xs) - column / 2, max(xs) + column / 2),
        (min(ys) - NODE_RADIUS - 1.5, max(ys) + NODE_RADIUS + 1.5),
    )
    return {
        "positions": positions,
        "radius": NODE_RADIUS,
        "kinds": kinds,
        "node_lines": node_lines,
        "edges": edges,
        "limits": limits,
    }
