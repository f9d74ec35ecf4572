"""Across settings: which settings to compare side by side, and ``results/summary.md``.

Two settings are compared when their configs differ in exactly one key, or when they run
the same task and differ in exactly one on/off switch (a boolean hyperparameter) -- the
paper's "modular addition with and without LayerNorm" also changes the batch size; such
extra differences are listed with the comparison.
"""

import json
import math
from dataclasses import asdict
from itertools import combinations
from typing import Any

import pandas as pd

from trainmap.config.settings import Setting
from trainmap.hmm.selection import selection_notes, stability_text
from trainmap.maps.phases import phases_text


def flat_config(setting: Setting) -> dict[str, Any]:
    """A setting as {dotted key: value}: hyperparameters, convergence, hmm and the rest."""
    data = asdict(setting)
    data.pop("name")
    data.pop("live")  # an analysis of the map, not a difference between two settings' runs
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    # Hyperparameters read better without their prefix ("layer_norm", not "params.layer_norm").
    return {k.removeprefix("params."): v for k, v in flat.items()}


def differences(a: Setting, b: Setting) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ: {key: (value in a, value in b)}, sorted by key."""
    fa, fb = flat_config(a), flat_config(b)
    keys = sorted(set(fa) | set(fb))
    return {k: (fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)}


def comparison_pairs(settings: dict[str, Setting]) -> list[dict[str, Any]]:
    """Pairs of settings to show side by side, as ``{"a", "b", "switch", "differences"}``.

    ``switch``: the one differing key, or the one differing boolean when the task is the
    same; ``differences``: every differing key (as ``[value in a, value in b]``).
    """
    pairs = []
    for a, b in combinations(sorted(settings), 2):
        diff = differences(settings[a], settings[b])
        switches = [k for k, (x, y) in diff.items() if isinstance(x, bool) and isinstance(y, bool)]
        same_task = settings[a].task is not None and settings[a].task == settings[b].task
        if len(diff) == 1:
            switch = next(iter(diff))
        elif same_task and len(switches) == 1:
            switch = switches[0]
        else:
            continue
        pairs.append(
            {"a": a, "b": b, "switch": switch, "differences": {k: list(v) for k, v in diff.items()}}
        )
    return pairs


def comparison_figures(pairs: list[dict[str, Any]]) -> list[str]:
    """Paths of the pairs' comparison figures (setting names cannot contain '-')."""
    return [f"results/comparisons/{pair['a']}--{pair['b']}.png" for pair in pairs]


def find_pair(pairs: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    (pair,) = [p for p in pairs if (p["a"], p["b"]) == (a, b)]
    return pair


def setting_paths(settings, file: str) -> list[str]:
    """``results/<setting>/<file>`` for every setting, in sorted order."""
    return [f"results/{name}/{file}" for name in sorted(settings)]


def _number(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def headline(
    training_map: dict, detours: pd.DataFrame, regression: dict, selection: dict | None = None
) -> dict[str, str]:
    """One setting's row of the summary table (display strings).

    ``selection``: its selection.json; adds how many restarts (and folds) agree on K and
    notes when K sits at the edge of ``hmm.states`` or few replicates agree. With support
    values (``training_map["support"]``), K comes with its range over the resamples and
    every detour and dead-end call with its support.
    """
    support = training_map.get("support")
    notes = [note for note in [_note(regression), _left_out_note(training_map)] if note]
    notes += selection_notes(selection) if selection else []
    notes += _support_notes(training_map) if support else []
    notes += _evidence_notes(regression)
    if training_map.get("notes"):
        notes.append(f"{len(training_map['notes'])} note(s) on the data below")
    return {
        "K": _k_text(training_map),
        "K agreed by": stability_text(selection) if selection else "–",
        "forking": "yes" if training_map["forking"] else "no",
        "detours": _calls(training_map, detours, "detour"),
        "dead ends": _calls(training_map, detours, "dead_end"),
        "R²": _number(regression.get("r2"), ".2f"),
        "R² last state": _number(regression.get("r2_last_state"), ".2f"),
        "route R² (CV)": _number(regression.get("route_r2_cv"), ".2f"),
        "p-value": _number(regression.get("f_pvalue"), ".2g"),
        "significant": "yes" if regression.get("significant") else "no",
        "runs": str(regression.get("n_runs", 0)),
        "censored": _number(regression.get("n_censored", 0), "d"),
        "dissimilarity": _number(regression.get("dissimilarity"), ".3f"),
        "note": "; ".join(notes),
    }


def _k_text(training_map: dict) -> str:
    """'5', or with resamples '5 (4–6 over 10 resamples)'."""
    k, support = str(training_map["n_states"]), training_map.get("support")
    if not support or not support["resamples"]:
        return k
    picked = sorted(int(n) for n in support["n_states"])
    span = str(picked[0]) if len(picked) == 1 else f"{picked[0]}–{picked[-1]}"
    return f"{k} ({span} over {support['resamples']} resamples)"


def _calls(training_map: dict, detours: pd.DataFrame, kind: str) -> str:
    """The map's own calls of ``kind``: '0', '1 (S3)', or with supports '1 (S3 90%)'; a
    call too few resamples repeat (``uncertain``) gets a question mark."""
    kinds = detours["kind"] if "kind" in detours else pd.Series("", index=detours.index)
    if kind == "detour" and "kind" not in detours:
        kinds = detours["is_detour"].map({True: "detour", False: ""})
    called = detours.loc[kinds == kind, "state"].astype(int).tolist()
    if not called:
        return "0"
    states = {s["id"]: s for s in training_map.get("states", [])}
    names = []
    for k in called:
        share = states.get(k, {}).get(f"{kind}_support")
        mark = "?" if states.get(k, {}).get("uncertain") else ""
        names.append(f"S{k}{mark}" + ("" if share is None else f" {share:.0%}"))
    return f"{len(called)} ({', '.join(names)})"


def _support_notes(training_map: dict) -> list[str]:
    """Plain words on the calls the resamples do not carry, and on those most resamples
    make that this map does not."""
    support, notes = training_map["support"], []
    names = {"detour": "detour", "dead_end": "dead end"}
    for state in training_map["states"]:
        kind = state["kind"]
        if state.get("uncertain"):
            notes.append(
                f"the {names[kind]} S{state['id']} is not robust: only "
                f"{state[f'{kind}_support']:.0%} of {support['resamples']} resamples find it"
            )
        for other in names:
            share = state.get(f"{other}_support")
            if other != kind and share is not None and share >= support["robust"]:
                notes.append(
                    f"S{state['id']} is a {names[other]} in {share:.0%} of the resamples but "
                    "not in this map: read it as unsettled"
                )
    return notes


def _evidence_notes(regression: dict) -> list[str]:
    """Says when the occupancy R² is not the states' route: how much of it the last
    state's share alone gives, and what the route explains out of sample."""
    r2, route = regression.get("r2"), regression.get("route_r2_cv")
    if r2 is None or route is None or route >= 0.1:
        return []
    last = regression.get("r2_last_state")
    if last is None:
        first = f"R² {r2:.2f}"
    elif last >= 0.75 * r2:
        first = f"R² {r2:.2f} is mostly the last state's share (alone {last:.2f})"
    else:
        first = f"R² {r2:.2f} (the last state's share alone: {last:.2f})"
    explains = "nothing" if route <= 0 else f"only {route:.2f}"
    return [f"{first}; which states a run passes through explains {explains} out of sample"]


def _note(regression: dict) -> str:
    """Why the regression says nothing, and which runs it left out for lack of a value."""
    parts = [] if regression.get("significant") else [str(regression.get("reason") or "")]
    unmeasured = regression.get("unmeasured_runs") or []
    if unmeasured:
        parts.append(f"left out, no convergence value: runs {unmeasured}")
    return "; ".join(p for p in parts if p)


def _left_out_note(training_map: dict) -> str:
    """The runs the HMM left out (map.json ``excluded_runs``; the unmeasured ones are in
    the regression's note)."""
    runs = [e["seed"] for e in training_map.get("excluded_runs") or []
            if e["left_out_of"] != "regression"]  # fmt: skip
    return f"left out of the HMM: runs {runs} (reasons below)" if runs else ""


def setting_details(training_map: dict) -> list[str]:
    """summary.md's lines for one setting under "Runs left out and notes": every run the
    map or the regression left out, with its reason, every note (map.json), and the
    phases of a setting with one run."""
    lines = [
        f"run {e['seed']} left out of the {e['left_out_of']}: {e['reason']}"
        for e in training_map.get("excluded_runs") or []
    ]
    phases = training_map.get("phases")
    tail = [f"phases of the one run: {phases_text(phases)}"] if phases else []
    return lines + list(training_map.get("notes") or []) + tail


def markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


FIGURES = ("selection", "map", "trajectories", "convergence", "coefficients")


def figure_paths(settings) -> list[str]:
    """Every per-setting figure summary.md links to (selection.png comes from hmm.smk)."""
    return [path for figure in FIGURES for path in setting_paths(settings, f"{figure}.png")]


PAGES = ("map", "curves")


def page_paths(settings) -> list[str]:
    """Every per-setting interactive page (map.html, curves.html) summary.md links to."""
    return [path for page in PAGES for path in setting_paths(settings, f"{page}.html")]


def probed_settings(settings) -> list[str]:
    """Names of the settings with a probe set (``probe:``), sorted."""
    return sorted(name for name, setting in settings.items() if setting.probe)


def function_space_paths(settings) -> list[str]:
    """function_space.png and .html of the settings with a probe set."""
    probed = probed_settings(settings)
    return [f"results/{name}/function_space.{ext}" for ext in ("png", "html") for name in probed]


def live_settings(settings) -> list[str]:
    """Names of the settings with a live map evaluation (``live:``), sorted."""
    return sorted(name for name, setting in settings.items() if setting.live)


def live_paths(settings) -> list[str]:
    """live/evaluation.json of the settings with ``live:``."""
    return [f"results/{name}/live/evaluation.json" for name in live_settings(settings)]


def live_line(evaluation: dict[str, Any]) -> str:
    """One line per fraction: the map's mean absolute error against the best baseline's."""
    parts = []
    for scores in evaluation["scores"]:
        errors = {m: scores[m]["mae"] for m in evaluation["methods"]}
        errors = {m: e for m, e in errors.items() if e is not None}
        if "map" not in errors:
            continue
        best = min((m for m in errors if m != "map"), key=errors.get, default=None)
        versus = "" if best is None else f" vs {errors[best]:,.0f} ({best})"
        parts.append(f"{scores['fraction']:g}: {errors['map']:,.0f}{versus}")
    return "mean absolute error of the predicted convergence step at " + "; ".join(parts)


def summary_markdown(
    headlines: dict[str, dict[str, str]],
    pairs: list[dict[str, Any]],
    figures: dict[str, str],
    probed: frozenset[str] = frozenset(),
    details: dict[str, list[str]] | None = None,
    live: dict[str, dict[str, Any]] | None = None,
) -> str:
    """``results/summary.md``: the table across settings, comparisons and figure links.

    headlines: setting -> ``headline(...)``; pairs: ``comparison_pairs(...)``; figures:
    pair key ``"a--b"`` -> path of its comparison figure relative to ``results/``;
    probed: the settings with a probe set (their function-space figures are linked);
    details: setting -> ``setting_details(...)``, listed under "Runs left out and notes";
    live: setting -> its live/evaluation.json (linked, with ``live_line``).
    """
    rows = [{"setting": name, **row} for name, row in sorted(headlines.items())]
    parts = ["# Training maps: summary across settings", "", KEY, "", markdown_table(rows)]
    parts += ["", "## Figures per setting", ""]
    parts += [
        f"- **{name}**: {_figure_links(name, name in probed, (live or {}).get(name))}"
        for name in sorted(headlines)
    ]
    listed = {name: lines for name, lines in sorted((details or {}).items()) if lines}
    if listed:
        parts += ["", "## Runs left out and notes", ""]
        for name, lines in listed.items():
            parts += [f"- **{name}**:", *(f"  - {line}" for line in lines)]
    parts += ["", "## Side by side", ""]
    if not pairs:
        parts.append("No two settings differ in exactly one config key or one switch.")
    for pair in pairs:
        parts += _pair_section(pair, headlines, figures)
    return "\n".join(parts).rstrip() + "\n"


# What the summary table's columns mean (the paragraph under its title).
KEY = (
    "K: states of the selected HMM (with support values: the range the resamples pick); "
    "K agreed by: resamples, folds and restarts that alone would "
    "pick the same K; detours (with support values: the share of resamples that call "
    "each one so; '?' marks a call fewer than half of them make): "
    "states with a positive convergence delay "
    "that some converged runs pass through and others converge without, in a regression "
    "significant at the setting's alpha; dead ends: states only runs that never converge "
    "visit; R² and "
    "p-value: OLS of convergence time on state occupancy; R² last state: the same from "
    "the share of the run in its last state alone (the trivial baseline); route R² (CV): "
    "out-of-sample R² of convergence time on which states a run passes through before "
    "the state it converges in; censored: runs that never "
    "reached the convergence threshold (set to their last step)."
)


def _figure_links(name: str, probed: bool, live: dict[str, Any] | None = None) -> str:
    """A setting's figures, interactive pages, (with a probe set) function space and
    (with ``live:``, its evaluation.json) the live map's evaluation."""
    links = " · ".join(f"[{fig}]({name}/{fig}.png)" for fig in FIGURES)
    links += " · interactive: " + " · ".join(f"[{page}.html]({name}/{page}.html)" for page in PAGES)
    if probed:
        links += (
            f" · function space: [png]({name}/function_space.png)"
            f" · [html]({name}/function_space.html)"
        )
    if live is not None:
        links += (
            f" · live map: [evaluation.png]({name}/live/evaluation.png) "
            f"({live_line(live)}, docs/live.md)"
        )
    return links


def _pair_section(pair: dict[str, Any], headlines: dict, figures: dict[str, str]) -> list[str]:
    """Two settings that differ in one key or switch: that difference, the others, their
    headlines side by side and their comparison figure."""
    a, b, switch = pair["a"], pair["b"], pair["switch"]
    va, vb = pair["differences"][switch]
    parts = [f"### {a} vs {b}: `{switch}` = {json.dumps(va)} vs {json.dumps(vb)}", ""]
    others = {k: v for k, v in pair["differences"].items() if k != switch}
    if others:
        also = ", ".join(
            f"`{k}` {json.dumps(x)} vs {json.dumps(y)}" for k, (x, y) in others.items()
        )
        parts += [f"Also different: {also}.", ""]
    side = [{"": key, a: headlines[a][key], b: headlines[b][key]} for key in headlines[a]]
    return parts + [markdown_table(side), "", f"![{a} vs {b}]({figures[f'{a}--{b}']})", ""]
