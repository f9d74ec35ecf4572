"""map.html: the training map to point at, beside map.png and drawn with its layout.

Positions, edge curves, colours and widths come from ``trainmap.figures.map.map_geometry``
(the PNG's own layout), so the two maps read the same: states in training order, states
most runs skip off the main row, detour states ringed red, dead ends ringed dashed grey.
Hovering a state shows runs visiting, converged runs visiting, kind, its label features
with their state means (z units) and the mean dwell time; hovering an edge's marker (its
middle; a self-loop's marker sits over its node) shows runs, the learned transition
probability (labelled as such, never a p-value), the mean convergence time of the runs
taking it and the feature changes. Clicking a state or an edge lists the seeds through it
with their convergence steps in the side panel; the seed picker draws one run's path.
"""

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainmap.figures.html import page
from trainmap.figures.map import kind_title, map_geometry
from trainmap.figures.style import (
    DEAD_END,
    DETOUR,
    INK,
    feature_change,
    plural,
    state_colors,
    transition_label,
)
from trainmap.maps.graph import transitions

PIXELS = 90  # pixels per data unit (map.png draws one unit as about one inch)
MARGIN = 30
MIN_WIDTH = 660  # pixels: room for the title (map.png is at least 7 inches wide)
PATH_COLOR = "rgba(255, 140, 0, 0.75)"
RING = {"detour": DETOUR, "dead_end": DEAD_END}  # ring and label colour of a kind of state


def dwell_times(states: pd.DataFrame, n_states: int) -> pd.DataFrame:
    """Mean length of a stay in each state: (n_states rows) ``checkpoints`` and ``steps``.

    A stay is a maximal stretch of consecutive checkpoints of one run decoded in the same
    state; its steps run from its first checkpoint to the next stay's first checkpoint (to
    the run's last checkpoint for the final stay). NaN for states nobody visits.
    """
    paths = states.sort_values(["seed", "step"], kind="stable")
    new_stay = (paths["state"] != paths.groupby("seed")["state"].shift()) | (
        paths["seed"] != paths["seed"].shift()
    )
    stay = new_stay.cumsum().rename("stay")
    stays = paths.groupby(stay).agg(
        seed=("seed", "first"), state=("state", "first"), start=("step", "first"),
        last=("step", "last"), checkpoints=("step", "size"),
    )  # fmt: skip
    following = stays.groupby("seed")["start"].shift(-1)
    stays["steps"] = following.fillna(stays["last"]) - stays["start"]
    means = stays.groupby("state")[["checkpoints", "steps"]].mean()
    return means.reindex(range(n_states))


def _number(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f}"


def state_hover(state: dict, n_runs: int, kind: str, means: dict, dwell) -> str:
    """Hover text of a state. means: {feature: state mean in z units} of its label features."""
    title = f"<b>S{state['id']}</b>" + (f" · {kind_title(state, kind)}" if kind else "")
    converged = state.get("converged_runs_visiting")
    support = state.get("support")
    lines = [
        title,
        f"runs visiting: {state['runs_visiting']}/{n_runs}",
        *([f"support: found in {support:.0%} of resamples"] if support is not None else []),
        f"converged runs visiting: {'–' if converged is None else converged}",
        f"kind: {kind or 'ordinary'}",
        f"mean dwell: {dwell['checkpoints']:.1f} checkpoints ({_number(dwell['steps'])} steps)",
    ]
    if state["top_features"]:
        lines.append("top features (state mean, z):")
        lines += [f"  {f} = {means[f]:+.2f}" for f in state["top_features"]]
    return "<br>".join(lines)


def edge_hover(edge: dict, n_runs: int) -> str:
    """Hover text of an edge: runs, transition probability, convergence, feature changes."""
    source, target = edge["source"], edge["target"]
    converge = edge.get("mean_convergence")
    lines = [
        f"<b>S{source} → S{target}</b>" + (" (self-loop)" if source == target else ""),
        f"runs taking it: {edge['runs']}/{n_runs}",
        f"transition probability {transition_label(source, target, edge['probability'])}"
        " (learned by the HMM; not a p-value)",
        f"mean convergence of these runs: {_number(converge)} steps"
        + (f" ({edge['runs_censored']} censored)" if edge.get("runs_censored") else ""),
    ]
    if edge.get("support") is not None:
        lines.append(f"support: taken in {edge['support']:.0%} of resamples")
    if edge["feature_changes"]:
        lines.append("feature changes (state means, z):")
        lines += [f"  {feature_change(f, d)}" for f, d in edge["feature_changes"].items()]
    return "<br>".join(lines)


def _outside_nodes(points: np.ndarray, ends: list, radius: float) -> np.ndarray:
    """The part of an edge curve outside its two node circles (so the arrow shows)."""
    keep = np.ones(len(points), dtype=bool)
    for centre in ends:
        keep &= np.hypot(*(points - np.asarray(centre)).T) > radius + 0.04
    return points[keep] if keep.sum() >= 2 else points


def _loop_point(position, radius: float) -> tuple[float, float]:
    return (position[0], position[1] + radius + 0.22)


def _run_path(seed_states: np.ndarray, geometry: dict) -> tuple[list, list]:
    """x, y of one run's path over the map: its stays' nodes joined along the drawn edges."""
    visits = seed_states[np.r_[True, seed_states[1:] != seed_states[:-1]]]
    start = geometry["positions"][int(visits[0])]
    xs, ys = [start[0]], [start[1]]
    for a, b in zip(visits[:-1], visits[1:], strict=True):
        points = geometry["edges"][(int(a), int(b))]["points"]
        xs += points[1:, 0].round(3).tolist()
        ys += points[1:, 1].round(3).tolist()
    return xs, ys


def _seed_rows(seeds, runs: pd.DataFrame) -> list[list]:
    """[[seed, convergence step or None, mark], ...] sorted by seed; mark is ``censored``,
    ``unmeasured`` (no convergence value: drawn, left out of the regression) or ``""``."""
    rows = []
    for seed in sorted(int(s) for s in seeds):
        step = runs.at[seed, "convergence_step"] if seed in runs.index else None
        censored = bool(runs.at[seed, "censored"]) if seed in runs.index else False
        measured = (
            bool(runs.at[seed, "measured"]) if "measured" in runs and seed in runs.index else True
        )
        mark = "unmeasured" if not measured else ("censored" if censored else "")
        step = None if step is None or pd.isna(step) or not measured else int(step)
        rows.append([seed, step, mark])
    return rows


def _figure(training_map: dict, geometry: dict, hovers: dict, title: str) -> go.Figure:
    """The map as a Plotly figure: edges (curves with arrowheads, a diamond at each middle
    for hovering), an empty trace for a run's path, the states, their texts and rings."""
    positions, radius = geometry["positions"], geometry["radius"]
    (x0, x1), (y0, y1) = geometry["limits"]
    fig = go.Figure()
    annotations = _draw_edge_curves(fig, geometry)
    edge_xy, edge_colors, labels = _edge_middles(training_map, geometry)
    annotations += labels + _node_texts(geometry)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="run path", hoverinfo="skip",
                             line={"color": PATH_COLOR, "width": 6}, showlegend=False))  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[xy[0] for xy in edge_xy], y=[xy[1] for xy in edge_xy], mode="markers",
            name="edges", customdata=list(range(len(edge_xy))),
            marker={"symbol": "diamond", "size": 11, "color": edge_colors,
                    "line": {"color": "white", "width": 1}},
            hovertext=hovers["edges"], hoverinfo="text", showlegend=False,
        )
    )  # fmt: skip
    fig.add_trace(_state_markers(training_map, geometry, hovers["states"]))
    axis = {"visible": False, "fixedrange": False}
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 15}},
        width=max(int((x1 - x0) * PIXELS) + 2 * MARGIN, MIN_WIDTH),
        height=int((y1 - y0) * PIXELS) + 90,
        autosize=False, margin={"l": MARGIN, "r": MARGIN, "t": 60, "b": 30},
        xaxis=axis | {"range": [x0, x1]},
        yaxis=axis | {"range": [y0, y1], "scaleanchor": "x", "scaleratio": 1},
        plot_bgcolor="white", paper_bgcolor="white", hovermode="closest",
        annotations=annotations, shapes=_state_rings(training_map, positions, radius,
                                                     geometry["kinds"]), dragmode="pan",
    )  # fmt: skip
    return fig


def _draw_edge_curves(fig: go.Figure, geometry: dict) -> list[dict]:
    """A line trace per edge between two states; returns their arrowheads (annotations)."""
    positions, radius = geometry["positions"], geometry["radius"]
    annotations = []
    for (source, target), look in geometry["edges"].items():
        points = _outside_nodes(look["points"], [positions[source], positions[target]], radius)
        line = {"color": look["color"], "width": look["width"] * 4 / 3}
        fig.add_trace(
            go.Scatter(x=points[:, 0], y=points[:, 1], mode="lines", line=line | {
                "dash": "dash" if look["dashed"] else "solid"}, hoverinfo="skip",
                showlegend=False, name=f"edge S{source}→S{target}", opacity=0.85)
        )  # fmt: skip
        annotations.append(
            {"x": points[-1, 0], "y": points[-1, 1], "ax": points[-3, 0], "ay": points[-3, 1],
             "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "showarrow": True,
             "arrowhead": 2, "arrowsize": 1, "arrowwidth": max(1.2, line["width"] * 0.8),
             "arrowcolor": look["color"], "text": ""}
        )  # fmt: skip
    return annotations


def _edge_middles(training_map: dict, geometry: dict) -> tuple[list, list, list[dict]]:
    """Each edge's hover point (a self-loop's beside its node), colour, and the label of
    each edge between two states (annotations), in map.json's edge order."""
    positions, radius = geometry["positions"], geometry["radius"]
    edge_xy, edge_colors, labels = [], [], []
    for edge in training_map["edges"]:
        key = (edge["source"], edge["target"])
        if key[0] == key[1]:
            edge_xy.append(_loop_point(positions[key[0]], radius))
            edge_colors.append(INK)
        else:
            look = geometry["edges"][key]
            edge_xy.append(tuple(look["points"][len(look["points"]) // 2]))
            edge_colors.append(look["color"])
            # runs and P(Si->Sj), and with resamples the edge's support (map.png's next line)
            shown = look["lines"][: 1 if edge.get("support") is None else 2]
            labels.append(
                {"x": edge_xy[-1][0], "y": edge_xy[-1][1], "text": " · ".join(shown),
                 "showarrow": False, "yshift": 14, "font": {"size": 10, "color": look["color"]},
                 "bgcolor": "rgba(255,255,255,0.8)"}
            )  # fmt: skip
    return edge_xy, edge_colors, labels


def _node_texts(geometry: dict) -> list[dict]:
    """The text under (or over) each state, as annotations."""
    radius, texts = geometry["radius"], []
    for k, (x, y) in geometry["positions"].items():
        below = y <= 0
        texts.append(
            {"x": x, "y": y - radius - 0.08 if below else y + radius + 0.4,
             "yanchor": "top" if below else "bottom", "showarrow": False, "align": "center",
             "text": "<br>".join(html.escape(line) for line in geometry["node_lines"][k]),
             "font": {"size": 10, "color": RING.get(geometry["kinds"][k], INK)},
             "bgcolor": "rgba(255,255,255,0.85)"}
        )  # fmt: skip
    return texts


def _state_markers(training_map: dict, geometry: dict, hovers: dict) -> go.Scatter:
    """The states: a circle each, ringed by its kind, named S<k>."""
    colors = state_colors(training_map["n_states"])
    positions, radius, kinds = geometry["positions"], geometry["radius"], geometry["kinds"]
    ids = list(positions)
    return go.Scatter(
        x=[positions[k][0] for k in ids], y=[positions[k][1] for k in ids],
        mode="markers+text", name="states", customdata=ids,
        text=[f"S{k}" for k in ids], textfont={"color": "white", "size": 13},
        marker={"size": 2 * radius * PIXELS, "color": [colors[k] for k in ids],
                "line": {"color": [RING.get(kinds[k], "white") for k in ids],
                         "width": [4.5 if kinds[k] else 2 for k in ids]}},
        hovertext=[hovers[k] for k in ids], hoverinfo="text", showlegend=False,
    )  # fmt: skip


def _state_rings(training_map: dict, positions: dict, radius: float, kinds: dict) -> list:
    """A dashed ring around each dead end and a dotted one around an uncertain call (a
    call too few resamples repeat), as shapes."""
    ids = list(positions)
    shapes = [
        {"type": "circle", "xref": "x", "yref": "y", "x0": positions[k][0] - radius - 0.06,
         "x1": positions[k][0] + radius + 0.06, "y0": positions[k][1] - radius - 0.06,
         "y1": positions[k][1] + radius + 0.06, "line": {"color": DEAD_END, "dash": "dash",
         "width": 1.5}, "layer": "above"}
        for k in ids if kinds[k] == "dead_end"
    ]  # fmt: skip
    uncertain = {s["id"] for s in training_map["states"] if s.get("uncertain")}
    shapes += [
        {"type": "circle", "xref": "x", "yref": "y", "x0": positions[k][0] - radius - 0.12,
         "x1": positions[k][0] + radius + 0.12, "y0": positions[k][1] - radius - 0.12,
         "y1": positions[k][1] + radius + 0.12, "line": {"color": RING[kinds[k]],
         "dash": "dot", "width": 2}, "layer": "above"}
        for k in ids if k in uncertain and kinds[k]
    ]  # fmt: skip
    return shapes


PANEL = """
<h2>{title}</h2>
<label>Draw one run's path: <select id="seed-picker"><option value="">— none —</option>
{options}</select></label>
<div id="path-info" class="note"></div>
<hr>
<div id="selection" class="note">Click a state or an edge (the diamond at its middle) to
list the runs through it.</div>
{left_out}
"""


def left_out_html(training_map: dict) -> str:
    """The runs the map or the regression left out, with their reasons, and the notes on
    what the data cannot carry (map.json ``excluded_runs``, ``notes``; trainmap.maps.notes)."""
    parts = []
    excluded = training_map.get("excluded_runs") or []
    if excluded:
        rows = "".join(
            f"<tr><td>{html.escape(str(e['seed']))}</td><td>{html.escape(e['left_out_of'])}"
            f"</td><td>{html.escape(e['reason'])}</td></tr>"
            for e in excluded
        )
        parts.append(
            f'<hr><div id="left-out"><h2>Runs left out ({len(excluded)})</h2><table>'
            f"<tr><th>seed</th><th>left out of</th><th>why</th></tr>{rows}</table></div>"
        )
    notes = training_map.get("notes") or []
    if notes:
        items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
        parts.append(f'<hr><div id="notes"><h2>Notes</h2><ul class="note">{items}</ul></div>')
    return "\n".join(parts)


SCRIPT = """
const traceIndex = (name) => gd.data.findIndex((t) => t.name === name);
const steps = (s) => (s === null ? "–" : s.toLocaleString("en"));
function listSeeds(heading, rows) {
  const body = rows.map((r) => `<tr><td class="seed" data-seed="${r[0]}">${r[0]}</td>` +
    `<td>${steps(r[1])}${r[2] ? ` (${r[2]})` : ""}</td></tr>`).join("");
  const box = document.getElementById("selection");
  box.className = "";
  box.innerHTML = `<h2>${heading}</h2><div>${rows.length} run(s); click a seed to draw ` +
    `its path</div><table><tr><th>seed</th><th>convergence step</th></tr>${body}</table>`;
  box.querySelectorAll(".seed").forEach((cell) => cell.addEventListener("click", () => {
    const picker = document.getElementById("seed-picker");
    picker.value = cell.dataset.seed;
    picker.dispatchEvent(new Event("change"));
  }));
}
gd.on("plotly_click", (event) => {
  const point = event.points[0];
  const name = point.data.name;
  if (name === "states") {
    const k = point.customdata;
    listSeeds(`Runs through S${k}`, DATA.state_seeds[String(k)]);
  } else if (name === "edges") {
    const e = DATA.edges[point.customdata];
    listSeeds(`Runs taking S${e.source} → S${e.target}`, e.seeds);
  }
});
document.getElementById("seed-picker").addEventListener("change", (event) => {
  const seed = event.target.value;
  const path = seed === "" ? {x: [], y: [], visits: []} : DATA.paths[seed];
  Plotly.restyle(gd, {x: [path.x], y: [path.y]}, [traceIndex("run path")]);
  document.getElementById("path-info").textContent = seed === "" ? "" :
    `seed ${seed}: ` + path.visits.map((v) => `S${v[0]} (from step ${v[1]})`).join(" → ");
});
"""


def map_page(
    training_map: dict,
    detours: pd.DataFrame,
    states: pd.DataFrame,
    runs: pd.DataFrame,
    means: np.ndarray,
    setting: str,
) -> str:
    """The whole map.html.

    training_map: map.json (after ``mark_detours``); detours: detours.csv; states:
    ``seed, step, state``; runs: convergence.parquet indexed by seed (``convergence_step``,
    ``censored``); means: (n_states, n_features) state means of the selected HMM in z
    units, columns in ``training_map["features"]`` order.
    """
    geometry = map_geometry(training_map, detours)
    kind = "forking" if training_map["forking"] else "a single path"
    title = (
        f"{setting}: training map — {plural(training_map['n_states'], 'state')}, "
        f"{plural(training_map['n_runs'], 'run')}, {kind}"
    )
    fig = _figure(training_map, geometry, _hovers(training_map, geometry, states, means), title)
    data = _page_data(training_map, geometry, states, runs)
    options = "\n".join(
        f'<option value="{seed}">seed {seed}</option>' for seed in sorted(data["paths"], key=int)
    )
    panel = PANEL.format(
        title=html.escape(f"{setting}: runs"), options=options, left_out=left_out_html(training_map)
    )
    return page(f"{setting}: training map", fig, panel, data, SCRIPT)


def _hovers(training_map: dict, geometry: dict, states: pd.DataFrame, means: np.ndarray) -> dict:
    """The hover texts: ``states`` {state: text} of the drawn states, ``edges`` in
    map.json's edge order."""
    n_runs, features = training_map["n_runs"], training_map["features"]
    dwell = dwell_times(states, training_map["n_states"])
    state_hovers = {
        s["id"]: state_hover(
            s, n_runs, geometry["kinds"][s["id"]],
            {f: float(means[s["id"], features.index(f)]) for f in s["top_features"]},
            dwell.loc[s["id"]],
        )
        for s in training_map["states"] if s["id"] in geometry["positions"]
    }  # fmt: skip
    return {
        "states": state_hovers,
        "edges": [edge_hover(e, n_runs) for e in training_map["edges"]],
    }


def _page_data(training_map: dict, geometry: dict, states: pd.DataFrame, runs) -> dict:
    """What the page's script reads: the runs through each state and edge, and each run's
    path over the map (its points and the states it entered, with the step)."""
    pairs = transitions(states)
    visits = states.drop_duplicates(["seed", "state"]).groupby("state")["seed"]
    by_seed = states.sort_values(["seed", "step"], kind="stable").groupby("seed")
    paths = {}
    for seed, run in by_seed:
        path = run["state"].to_numpy(dtype=int)
        stays = np.r_[True, path[1:] != path[:-1]]
        x, y = _run_path(path, geometry)
        entered = run["step"].to_numpy()[stays]
        visits_list = [[int(k), int(s)] for k, s in zip(path[stays], entered, strict=True)]
        paths[str(int(seed))] = {"x": x, "y": y, "visits": visits_list}
    return {
        "state_seeds": {str(k): _seed_rows(seeds, runs) for k, seeds in visits},
        "edges": [
            {
                "source": e["source"],
                "target": e["target"],
                "seeds": _seed_rows(
                    pairs.loc[
                        (pairs["source"] == e["source"]) & (pairs["target"] == e["target"]), "seed"
                    ].unique(),
                    runs,
                ),
            }
            for e in training_map["edges"]
        ],  # fmt: skip
        "paths": paths,
    }
