"""curves.html: every feature and the convergence column against step, for all runs,
coloured by decoded state (trajectories.png's encoding), with a feature selector.

Display only, never the analysis: each run is thinned to at most ``points_per_run``
checkpoints (evenly spaced, plus the checkpoints around every change of state, so the
colours stay right), sized so that the data stay under ``DATA_BUDGET`` characters
whatever the number of runs and checkpoints; values are stored as 16-bit steps of each
column's range (1/65534 of it: invisible at screen resolution, the hover rounds to 4
significant digits). With plotly.js inlined (4.6 MiB) a page stays under 5 MiB.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from trainmap.figures.html import packed, page
from trainmap.figures.style import INK, UNDECODED, state_colors
from trainmap.maps.convergence import rule_text

DATA_BUDGET = 350_000  # characters of packed data in one page
MIN_POINTS, MAX_POINTS = 40, 1000  # per run, whatever the budget says
MISSING = 65535  # 16-bit code of NaN


def points_per_run(n_runs: int, n_columns: int) -> int:
    """Checkpoints shown per run: the data budget over the runs and the packed bytes of one
    checkpoint (step int32, state uint8, one uint16 per column; base64 = 4/3)."""
    chars = (4 + 1 + 2 * n_columns) * 4 / 3
    return int(np.clip(DATA_BUDGET // (max(n_runs, 1) * chars), MIN_POINTS, MAX_POINTS))


def display_rows(states: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the checkpoints of one run to show: first, last, evenly spaced ones and
    both sides of every change of state (evenly thinned if they alone pass ``limit``)."""
    n = len(states)
    if n <= limit:
        return np.arange(n)
    changes = np.flatnonzero(states[1:] != states[:-1])
    around = np.unique(np.r_[changes, changes + 1])
    if len(around) > limit // 2:
        around = around[np.linspace(0, len(around) - 1, limit // 2).round().astype(int)]
    even = np.linspace(0, n - 1, max(limit - len(around), 2)).round().astype(int)
    return np.unique(np.r_[even, around])


def quantize(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint16 codes of values in [low, high] (NaN -> MISSING); decoded as
    low + code * (high - low) / (MISSING - 1)."""
    span = high - low if high > low else 1.0
    codes = np.round((values - low) / span * (MISSING - 1))
    return np.where(np.isfinite(values), codes, MISSING).astype(np.uint16)


def curves_data(
    trajectories: pd.DataFrame,
    states: pd.DataFrame,
    columns: list[str],
    n_states: int,
) -> dict:
    """The page's data: per run its seed and packed ``step``, ``state`` (255: undecoded)
    and one uint16 code array per column; per column its ``low`` and ``high``."""
    for column in columns:
        if column not in trajectories.columns:
            raise ValueError(f"curves: column {column!r} is not in the trajectories table")
    table = trajectories[["seed", "step", *columns]].merge(
        states[["seed", "step", "state"]], on=["seed", "step"], how="left"
    )
    table = table.sort_values(["seed", "step"], kind="stable")
    limit = points_per_run(table["seed"].nunique(), len(columns))
    finite = {c: table[c].to_numpy(dtype=float) for c in columns}
    ranges = {}
    for c, v in finite.items():
        ok = v[np.isfinite(v)]
        ranges[c] = (float(ok.min()), float(ok.max())) if len(ok) else (0.0, 1.0)
    runs = []
    for seed, run in table.groupby("seed", sort=True):
        state = run["state"].to_numpy(dtype=float)
        code = np.where(np.isnan(state), 255, np.nan_to_num(state)).astype(np.uint8)
        rows = display_rows(code, limit)
        entry = {
            "seed": int(seed),
            "step": packed(run["step"].to_numpy()[rows], "int32"),
            "state": packed(code[rows], "uint8"),
        }
        entry["values"] = {
            c: packed(quantize(run[c].to_numpy(dtype=float)[rows], *ranges[c]), "uint16")
            for c in columns
        }
        runs.append(entry)
    return {
        "columns": columns,
        "ranges": {c: list(r) for c, r in ranges.items()},
        "n_states": n_states,
        "colors": state_colors(n_states),
        "undecoded": UNDECODED,
        "missing": MISSING,
        "points_per_run": limit,
        "runs": runs,
    }


PANEL = """
<h2>{title}</h2>
<label>Feature: <select id="feature-picker">{options}</select></label>
<p class="note">All runs, coloured by decoded state; at most {limit} checkpoints per run are
drawn (display only). Hover a curve for seed, step, state and value.</p>
"""

SCRIPT = """
const runs = DATA.runs.map((r) => ({
  seed: r.seed, step: unpack(r.step, Int32Array), state: unpack(r.state, Uint8Array),
  values: Object.fromEntries(Object.entries(r.values).map(([c, v]) => [c, unpack(v, Uint16Array)])),
}));
function traces(column) {
  const [low, high] = DATA.ranges[column];
  const scale = (high > low ? high - low : 1) / (DATA.missing - 1);
  const value = (code) => (code === DATA.missing ? null : low + code * scale);
  const keys = [...Array(DATA.n_states).keys(), 255];
  const out = Object.fromEntries(keys.map((k) => [k, {x: [], y: [], customdata: []}]));
  for (const run of runs) {
    const codes = run.values[column];
    let last = null;  // [trace key, index] where the previous segment ended
    for (let i = 0; i + 1 < run.step.length; i++) {
      const k = run.state[i];  // a segment takes the state of its first checkpoint
      const t = out[k];
      if (!last || last[0] !== k || last[1] !== i) {
        if (t.x.length) { t.x.push(null); t.y.push(null); t.customdata.push(null); }
        t.x.push(run.step[i]); t.y.push(value(codes[i]));
        t.customdata.push([run.seed, stateName(k)]);
      }
      t.x.push(run.step[i + 1]); t.y.push(value(codes[i + 1]));
      t.customdata.push([run.seed, stateName(run.state[i + 1])]);
      last = [k, i + 1];
    }
  }
  return keys.map((k) => out[k]);
}
const stateName = (k) => (k === 255 ? "undecoded" : `S${k}`);
function show(column) {
  const data = traces(column);
  const update = {x: data.map((d) => d.x), y: data.map((d) => d.y),
                  customdata: data.map((d) => d.customdata)};
  Plotly.restyle(gd, update, data.map((_, i) => i));
  const threshold = DATA.thresholds[column];
  const shapes = threshold === undefined ? [] : [{type: "line", xref: "paper", x0: 0, x1: 1,
    yref: "y", y0: threshold.value, y1: threshold.value,
    line: {color: "#333", dash: "dash", width: 1}}];
  const notes = threshold === undefined ? [] : [{xref: "paper", x: 1, xanchor: "right",
    yref: "y", y: threshold.value, yanchor: "bottom", showarrow: false,
    text: `converged: ${threshold.rule}`, font: {size: 10, color: "#333"}}];
  Plotly.relayout(gd, {"yaxis.title.text": column, shapes: shapes, annotations: notes});
}
const picker = document.getElementById("feature-picker");
picker.addEventListener("change", () => show(picker.value));
show(picker.value);
"""


def curves_page(
    trajectories: pd.DataFrame,
    states: pd.DataFrame,
    features: list[str],
    convergence: dict,
    n_states: int,
    setting: str,
) -> str:
    """The whole curves.html: the convergence column (if any) then every feature.

    trajectories: one row per (seed, step) with the columns; states: ``seed, step, state``;
    convergence: ``{column, threshold[, direction]}`` or empty (the threshold is drawn
    dashed with its rule, e.g. "converged: first eval_loss < 2.5").
    """
    column = convergence["column"] if convergence else None
    columns = ([column] if column else []) + [f for f in features if f != column]
    data = curves_data(trajectories, states, columns, n_states)
    data["thresholds"] = (
        {column: {"value": float(convergence["threshold"]), "rule": rule_text(convergence)}}
        if column
        else {}
    )
    fig = go.Figure()
    hover = "seed %{customdata[0]}<br>step %{x}<br>state %{customdata[1]}<br>value %{y:.4g}"
    for k, color in [*enumerate(data["colors"]), (255, UNDECODED)]:
        fig.add_trace(
            go.Scatter(
                x=[], y=[], mode="lines", name=f"S{k}" if k != 255 else "undecoded",
                line={"color": color, "width": 1.2}, opacity=0.8, hovertemplate=hover,
                showlegend=k != 255,
            )
        )  # fmt: skip
    fig.update_layout(
        title={"text": f"{setting}: every run's curves, coloured by decoded state", "x": 0.02},
        width=900, height=560, autosize=False, hovermode="closest",
        xaxis={"title": {"text": "step"}, "gridcolor": "#eee"},
        yaxis={"gridcolor": "#eee"}, plot_bgcolor="white", paper_bgcolor="white",
        legend={"title": {"text": "state"}}, font={"color": INK},
    )  # fmt: skip
    options = "".join(f'<option value="{c}">{c}</option>' for c in columns)
    panel = PANEL.format(title=f"{setting}: curves", options=options, limit=data["points_per_run"])
    return page(f"{setting}: curves", fig, panel, data, SCRIPT)
