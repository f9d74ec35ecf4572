"""Support values of the kept map: how often its states, edges and calls come back when
the arbitrary choices are redrawn (``stability: {resamples: R}``; trainmap.hmm.resample).

**Decision: states are matched by the checkpoints they hold.** Both the kept map and a
resample's refit decode every checkpoint of every run. A kept state k and a refit state
j are paired by the Hungarian assignment that maximises the checkpoints they share
(scipy's ``linear_sum_assignment`` on the contingency table), and k *comes back* in that
refit when the pair's Jaccard index (shared checkpoints / checkpoints in either) is at
least ``MATCH_JACCARD``. Matching by what the states hold, not by their emission means,
needs no distance scale and treats a state that a refit splits in two, or merges with a
neighbour, as not found (each half holds under half of it).

- a state's ``support``: the share of resamples in which it comes back;
- an edge i -> j's ``support``: the share in which both ends come back and the refit's
  decoded paths take the matched edge (self-loops likewise);
- ``detour_support`` / ``dead_end_support`` of a state: the share in which it comes back
  and the refit's regression calls its match a detour / dead end. The map reports a
  detour (or dead end) as robust when that support is at least ``ROBUST``; the calls of
  the kept map's own regression with less are drawn as uncertain;
- ``n_states``: how many resamples pick each K.
"""

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from trainmap.maps.graph import transitions

MATCH_JACCARD = 0.5
ROBUST = 0.5
STATE_SUPPORTS = ("support", "detour_support", "dead_end_support")
RULE = (
    f"states matched to each resample's refit by the checkpoints they hold (Hungarian "
    f"assignment, Jaccard >= {MATCH_JACCARD}); support = share of resamples in which the "
    f"state, edge or call comes back; calls with support >= {ROBUST} are robust"
)


def match_states(kept: np.ndarray, refit: np.ndarray) -> dict[int, tuple[int, float]]:
    """Kept state -> (matched refit state, Jaccard index) for every kept state the
    assignment pairs. ``kept``, ``refit``: the state of every checkpoint, same rows."""
    kept, refit = np.asarray(kept), np.asarray(refit)
    n_kept, n_refit = kept.max() + 1, refit.max() + 1
    shared = np.zeros((n_kept, n_refit))
    np.add.at(shared, (kept, refit), 1)
    rows, cols = linear_sum_assignment(-shared)
    sizes_kept, sizes_refit = shared.sum(axis=1), shared.sum(axis=0)
    matches = {}
    for k, j in zip(rows, cols, strict=True):
        union = sizes_kept[k] + sizes_refit[j] - shared[k, j]
        if shared[k, j] > 0:
            matches[int(k)] = (int(j), float(shared[k, j] / union))
    return matches


def _edges(seeds: np.ndarray, steps: np.ndarray, states: np.ndarray) -> set[tuple[int, int]]:
    pairs = transitions(pd.DataFrame({"seed": seeds, "step": steps, "state": states}))
    return set(zip(pairs["source"].tolist(), pairs["target"].tolist(), strict=True))


def map_support(
    kept: pd.DataFrame,
    kinds: list[str],
    n_states: int,
    refits: list[dict[str, Any]],
) -> dict[str, Any]:
    """Supports of the kept map against the resamples' refits.

    ``kept``: ``seed, step, state`` of every checkpoint (states.parquet, sorted by seed and
    step); ``kinds``: the kept map's call per state (``detour``, ``dead_end`` or ``""``);
    ``refits``: per resample ``{"n_states", "states" (same rows as kept), "kinds"}``.
    Returns ``{"resamples", "n_states" {K: count}, "states": [...], "edges": [...],
    "rule"}``; without refits every support is null.
    """
    kept = kept.sort_values(["seed", "step"], kind="stable")
    seeds, steps = kept["seed"].to_numpy(), kept["step"].to_numpy()
    path = kept["state"].to_numpy(dtype=int)
    kept_edges = sorted(_edges(seeds, steps, path))
    found, detour, dead_end, edge_found = _count_matches(
        seeds, steps, path, kept_edges, n_states, refits
    )
    n = len(refits)

    def share(count: float) -> float | None:
        return float(count / n) if n else None

    return {
        "resamples": n,
        "n_states": {str(k): c for k, c in sorted(Counter(r["n_states"] for r in refits).items())},
        "states": [
            {
                "id": k,
                "kind": kinds[k],
                "support": share(found[k]),
                "detour_support": share(detour[k]),
                "dead_end_support": share(dead_end[k]),
            }
            for k in range(n_states)
        ],
        "edges": [
            {"source": a, "target": b, "support": share(edge_found[(a, b)])} for a, b in kept_edges
        ],
        "rule": RULE,
    }


def _count_matches(seeds, steps, path, kept_edges, n_states: int, refits: list) -> tuple:
    """Over the refits: how often each kept state is matched (found), matched by a detour
    and by a dead end, and how often each kept edge joins two matched states in the
    refit too. seeds, steps, path: (checkpoints,) arrays of the kept map."""
    found = np.zeros(n_states)
    detour, dead_end = np.zeros(n_states), np.zeros(n_states)
    edge_found = Counter()
    for refit in refits:
        states = np.asarray(refit["states"], dtype=int)
        if len(states) != len(path):
            raise ValueError(
                f"resample {refit.get('resample')} decoded {len(states)} checkpoints, "
                f"the kept map {len(path)}: they were fitted on different sequences"
            )
        matches = {
            k: j
            for k, (j, jaccard) in match_states(path, states).items()
            if jaccard >= MATCH_JACCARD
        }
        refit_edges = _edges(seeds, steps, states)
        for k, j in matches.items():
            found[k] += 1
            detour[k] += refit["kinds"][j] == "detour"
            dead_end[k] += refit["kinds"][j] == "dead_end"
        for a, b in kept_edges:
            if a in matches and b in matches and (matches[a], matches[b]) in refit_edges:
                edge_found[(a, b)] += 1
    return found, detour, dead_end, edge_found


def robust_calls(support: dict[str, Any], kind: str) -> list[int]:
    """States whose ``<kind>_support`` is at least ``ROBUST`` (whatever the kept map's own
    regression called them): the calls a report can stand on."""
    key = f"{kind}_support"
    return [s["id"] for s in support["states"] if s[key] is not None and s[key] >= ROBUST]


def attach_support(training_map: dict, support: dict[str, Any]) -> dict:
    """Copy of ``training_map`` (map.json) with the supports of its states and edges and
    a ``support`` block: resamples, the K each picks, the robust calls and the rule."""
    by_state = {s["id"]: s for s in support["states"]}
    by_edge = {(e["source"], e["target"]): e["support"] for e in support["edges"]}
    states = []
    for state in training_map["states"]:
        values = {key: by_state[state["id"]][key] for key in STATE_SUPPORTS}
        call = values.get(f"{state['kind']}_support") if state["kind"] else None
        # The kept map's own detour or dead-end call, found again by too few resamples.
        states.append({**state, **values, "uncertain": call is not None and call < ROBUST})
    edges = [
        {**edge, "support": by_edge.get((edge["source"], edge["target"]))}
        for edge in training_map["edges"]
    ]
    block = {
        "resamples": support["resamples"],
        "n_states": support["n_states"],
        "robust_detours": robust_calls(support, "detour"),
        "robust_dead_ends": robust_calls(support, "dead_end"),
        "robust": ROBUST,
        "rule": support["rule"],
    }
    return {**training_map, "states": states, "edges": edges, "support": block}
