"""The map of one run's phases (a setting with one decoded run, ``hmm.selection: time``).

With many runs the map is a graph of states and the roads runs take between them; with
one run it is a sequence: the run's Viterbi path cut where the state changes. ``map.json``
gains ``phases``, in time order, one entry per stay in a state (a state the run returns to
appears again):

- ``state``, ``first_step`` and ``last_step`` (its first and last checkpoint there);
- **dwell**: ``checkpoints`` (how many) and ``steps``, from its first step to the next
  phase's first step (the run stayed at least until its last checkpoint there and left
  before the next one is logged); the last phase's ``steps`` run to the run's last
  checkpoint, a lower bound, as training may have gone on;
- ``next_state`` and ``feature_changes``: the features that change at the transition to
  the next phase, as the map's edge labels name them (trainmap.maps.graph: ranked by the
  posterior gradient at the first checkpoint after the transition, values mu_next -
  mu_this in z units); empty for the last phase.
"""

import numpy as np
import pandas as pd


def run_phases(states: pd.DataFrame, edges: list[dict]) -> list[dict]:
    """One run's phases (see the module docstring).

    states: ``seed, step, state`` of one run; edges: map.json's ``edges``.
    """
    if states["seed"].nunique() != 1:
        raise ValueError(f"phases are drawn for one run; got {states['seed'].nunique()}")
    path = states.sort_values("step", kind="stable")
    steps, visited = path["step"].to_numpy(), path["state"].to_numpy()
    starts = np.flatnonzero(np.r_[True, visited[1:] != visited[:-1]])
    ends = np.r_[starts[1:], len(visited)]
    changes = {(e["source"], e["target"]): e["feature_changes"] for e in edges}
    phases = []
    for first, stop in zip(starts, ends, strict=True):
        state = int(visited[first])
        following = int(visited[stop]) if stop < len(visited) else None
        until = steps[stop] if stop < len(visited) else steps[stop - 1]
        phases.append(
            {
                "state": state,
                "first_step": int(steps[first]),
                "last_step": int(steps[stop - 1]),
                "checkpoints": int(stop - first),
                "steps": int(until - steps[first]),
                "next_state": following,
                "feature_changes": {} if following is None else changes[(state, following)],
            }
        )
    return phases


def with_phases(training_map: dict, states: pd.DataFrame) -> dict:
    """``training_map`` with ``phases`` when it maps one run; unchanged otherwise."""
    if training_map["n_runs"] != 1:
        return training_map
    return {**training_map, "phases": run_phases(states, training_map["edges"])}


def phases_text(phases: list[dict]) -> str:
    """``S0 (steps 0-400, 5 checkpoints) -> S1 (...)``: summary.md's line for a run."""
    return " → ".join(
        f"S{p['state']} (steps {p['first_step']}–{p['last_step']}, {p['checkpoints']} "
        f"checkpoint{'s' if p['checkpoints'] != 1 else ''})"
        for p in phases
    )


def dwell_lines(phases: list[dict] | None) -> dict[int, list[str]]:
    """Per state, a line for each stay of the one run there (``steps 0–400 · 5
    checkpoints``), for the text under the map's nodes; empty without phases."""
    lines: dict[int, list[str]] = {}
    for p in phases or []:
        plural = "s" if p["checkpoints"] != 1 else ""
        lines.setdefault(p["state"], []).append(
            f"steps {p['first_step']}–{p['last_step']} · {p['checkpoints']} checkpoint{plural}"
        )
    return lines
