"""The training map (METHOD.md section 5): states, observed transitions and their labels.

Decisions:

- **Edges** are the transitions i -> j (self-loops included) that occur in at least one
  decoded path; ``probability`` is the learned transition probability, ``runs`` the
  number of runs taking the edge at least once, ``mean_convergence`` the mean
  convergence time of those runs, with censored runs at their censoring time (their last
  step, as in the regression) and counted in ``runs_censored``.
- **State labels** must say something for every state, the start state included. The
  derivative of log p(s_t = k | z_1..t) vanishes where the filter is certain of k: at a
  run's first checkpoint (the learned start probabilities are usually one-hot) and in
  the middle of long stays; there the importances fall to ~1e-68 (default parity run)
  and their ranking is floating-point noise. So a state's label ranks features by the
  gradient of the posterior *log-odds* of the state,
  |d logit p(s_t = k | z_1..t) / d z_t| with logit p = log p - log(1 - p)
  (trainmap.hmm.filtering.log_odds_gradients), averaged over **every checkpoint decoded in
  k**. At each checkpoint it is the derivative of log p
  divided by the common factor 1 - p(s_t = k), so it ranks features exactly as METHOD.md
  section 5's derivative does, while keeping its size when the posterior saturates: it is
  the difference between k's pull P_k^-1 (mu_k - z_t) and the filter-weighted pull of the
  states the run could be in instead (uniform-prior weights where the filter rules every
  other state out). Units: nats of log-odds per z unit. The top 3 features whose
  importance exceeds ``MIN_IMPORTANCE`` label the state (fewer if fewer do; none for a
  one-state model, which has nothing to tell apart). ``map.json`` says so in
  ``state_labels``.
- **Edge labels** (the paper's definition, unchanged): |d log p(s_t = k | z_1..t) / d z_t|
  at the first checkpoint after each occurrence of the transition j -> k (where the
  filter is switching, so the derivative is informative), averaged over the occurrences,
  its top 3 features, with the change of their state means mu_k - mu_j in z units
  (sign = direction). Self-loops have no entry and no feature changes (``{}``).
- **forking**: the non-self-loop edges between visited states do not form one simple
  directed path (a branch, a merge, a cycle, or disconnected pieces).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import pandas as pd

from trainmap.hmm.filtering import feature_importance, filtering_posteriors, log_odds_gradients
from trainmap.maps.detours import mean_first_visit, runs_visiting, training_order

if TYPE_CHECKING:  # hmmlearn imports scikit-learn (~0.8 s): jobs that neither fit nor
    from hmmlearn.hmm import GaussianHMM  # decode do not pay for it

TOP_FEATURES = 3
# A feature whose one-SD change moves a state's log-odds by less than this (nats per z
# unit) says nothing about the state; such features are never part of a label.
MIN_IMPORTANCE = 1e-6
STATE_LABELS = (
    "features ranked by |d logit p(s_t = k | z_1..t) / d z_t| (posterior log-odds of the "
    "state, nats per z unit), averaged over every checkpoint decoded in the state; top 3 "
    f"above {MIN_IMPORTANCE:g}"
)
EDGE_LABELS = (
    "features ranked by |d log p(s_t = k | z_1..t) / d z_t| averaged over the first "
    "checkpoints after the transition; values: mu_k - mu_j in z units"
)


def transitions(states: pd.DataFrame) -> pd.DataFrame:
    """Every consecutive pair of every decoded path, self-loops included.

    states: ``seed, step, state``. Returns ``seed, step, source, target`` (``step`` is the
    checkpoint of the target), in path order.
    """
    paths = states.sort_values(["seed", "step"], kind="stable")
    source = paths.groupby("seed")["state"].shift(1)
    pairs = paths.assign(source=source).dropna(subset=["source"])
    pairs = pairs.rename(columns={"state": "target"})
    pairs["source"] = pairs["source"].astype(int)
    return pairs[["seed", "step", "source", "target"]].reset_index(drop=True)


def edge_table(
    states: pd.DataFrame, transmat: np.ndarray, convergence: pd.DataFrame
) -> pd.DataFrame:
    """The map's edges: transitions observed in some path, with their statistics.

    transmat: (n_states, n_states) learned transition matrix; convergence: per run, indexed
    by seed, ``convergence_step`` and ``censored`` (trainmap.maps.detours.convergence_times)
    and optionally ``measured``: a run with no convergence value (``measured`` false) is
    drawn like any other and counted in ``runs_unmeasured``, never in ``mean_convergence``.
    Returns ``source, target, probability, runs, occurrences, mean_convergence,
    runs_censored, runs_unmeasured``, sorted by source and target.
    """
    pairs = transitions(states)
    missing = set(states["seed"]) - set(convergence.index)
    if missing:
        raise ValueError(f"runs without a convergence time: {sorted(missing)}")
    times = convergence[["convergence_step", "censored"]].astype({"convergence_step": float})
    measured = convergence.get("measured", pd.Series(True, index=convergence.index))
    unmeasured = ~measured.astype(bool)
    times = times.assign(
        convergence_step=times["convergence_step"].where(~unmeasured),
        censored=times["censored"].astype(bool) & ~unmeasured,
        unmeasured=unmeasured,
    )
    taken = pairs.drop_duplicates(["seed", "source", "target"]).join(times, on="seed")
    edges = taken.groupby(["source", "target"]).agg(
        runs=("seed", "size"),
        mean_convergence=("convergence_step", "mean"),
        runs_censored=("censored", "sum"),
        runs_unmeasured=("unmeasured", "sum"),
    )
    edges["occurrences"] = pairs.groupby(["source", "target"]).size()
    edges = edges.reset_index()
    edges["probability"] = transmat[edges["source"], edges["target"]]
    columns = ["source", "target", "probability", "runs", "occurrences"]
    return edges[columns + ["mean_convergence", "runs_censored", "runs_unmeasured"]]


def _paths(
    features: list[str], sequences: pd.DataFrame, states: pd.DataFrame
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per run, in seed order: (z-scored features (T, F), decoded path (T,))."""
    table = states[["seed", "step", "state"]].merge(
        sequences, on=["seed", "step"], how="left", validate="one_to_one"
    )
    if table[features].isna().any().any():
        raise ValueError("states.parquet has checkpoints without (finite) features")
    table = table.sort_values(["seed", "step"], kind="stable")
    return [
        (run[features].to_numpy(dtype=float), run["state"].to_numpy(dtype=int))
        for _, run in table.groupby("seed")
    ]


def entry_importance(
    model: GaussianHMM, features: list[str], sequences: pd.DataFrame, states: pd.DataFrame
) -> dict[tuple[int, int], tuple[np.ndarray, int]]:
    """Mean absolute posterior gradient at the first checkpoint after each transition.

    sequences: ``seed, step`` and the z-scored ``features`` (the HMM's inputs); states:
    ``seed, step, state`` for the same rows. Returns {(source, target): (mean
    |d log p(s_t = target | z_1..t) / d z_t| over the occurrences of source -> target,
    shape (n_features,), number of occurrences)} for every non-self-loop transition.
    """
    sums: dict[tuple[int, int], np.ndarray] = defaultdict(lambda: np.zeros(len(features)))
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for X, path in _paths(features, sequences, states):
        importance = feature_importance(model, X, filtering_posteriors(model, X))
        for t in np.flatnonzero(path[1:] != path[:-1]) + 1:
            key = (int(path[t - 1]), int(path[t]))
            sums[key] += importance[t, path[t]]
            counts[key] += 1
    return {key: (sums[key] / counts[key], counts[key]) for key in sums}


def state_importance(
    model: GaussianHMM, features: list[str], sequences: pd.DataFrame, states: pd.DataFrame
) -> np.ndarray:
    """Label importance of each feature for each state: (n_states, n_features).

    The mean over every checkpoint decoded in k of |d logit p(s_t = k | z_1..t) / d z_t|
    (see the module docstring); NaN rows for states no run visits.
    """
    n_states = model.n_components
    sums, counts = np.zeros((n_states, len(features))), np.zeros(n_states)
    for X, path in _paths(features, sequences, states):
        np.add.at(sums, path, np.abs(log_odds_gradients(model, X, path)))
        np.add.at(counts, path, 1)
    with np.errstate(invalid="ignore"):  # 0/0 = NaN marks an unvisited state
        return sums / counts[:, None]


def top_features(
    importance: np.ndarray,
    features: list[str],
    n: int = TOP_FEATURES,
    floor: float = 0.0,
) -> list[str]:
    """Names of the n largest entries above ``floor`` (ties keep feature order)."""
    order = np.argsort(-importance, kind="stable")
    return [features[i] for i in order[:n] if importance[i] > floor]


def is_forking(edges: pd.DataFrame, visited: list[int]) -> bool:
    """True unless the visited states and non-self-loop edges form one simple path."""
    graph = nx.DiGraph()
    graph.add_nodes_from(visited)
    moves = edges.loc[edges["source"] != edges["target"], ["source", "target"]]
    graph.add_edges_from(moves.itertuples(index=False, name=None))
    if graph.number_of_nodes() <= 1:
        return False
    degrees_ok = all(d <= 1 for _, d in graph.in_degree()) and all(
        d <= 1 for _, d in graph.out_degree()
    )
    single = degrees_ok and nx.is_weakly_connected(graph) and nx.is_directed_acyclic_graph(graph)
    return not single


def build_map(
    model: GaussianHMM,
    features: list[str],
    sequences: pd.DataFrame,
    states: pd.DataFrame,
    convergence: pd.DataFrame,
) -> dict:
    """The training map as written to ``map.json`` (CONTRACT.md keys plus extras).

    model: the selected HMM; features: its feature order; sequences: z-scored features
    per ``seed, step``; states: Viterbi ``seed, step, state``; convergence: per run
    (trainmap.maps.detours.convergence_times). Every state's ``kind`` is empty here;
    ``mark_detours`` fills it from the detour table.
    """
    n_states = model.n_components
    edges = edge_table(states, model.transmat_, convergence)
    entries = entry_importance(model, features, sequences, states)
    per_state = state_importance(model, features, sequences, states)
    visiting = runs_visiting(states, n_states)
    first_steps = mean_first_visit(states, n_states)
    occupancy = states["state"].value_counts(normalize=True).reindex(range(n_states), fill_value=0)
    paths = states.sort_values(["seed", "step"], kind="stable").groupby("seed")["state"]
    starts, ends = paths.first().value_counts(), paths.last().value_counts()
    order = training_order(states, n_states)
    state_entries = []
    for k in range(n_states):
        visited = not np.isnan(per_state[k]).any()
        top = top_features(per_state[k], features, floor=MIN_IMPORTANCE) if visited else []
        state_entries.append(
            {
                "id": k,
                "top_features": top,
                "runs_visiting": int(visiting[k]),
                "kind": "",
                "importance": {f: float(per_state[k][features.index(f)]) for f in top},
                "occupancy": float(occupancy[k]),
                "mean_first_step": None if np.isnan(first_steps[k]) else float(first_steps[k]),
                "order": order.index(k),
                "initial_runs": int(starts.get(k, 0)),
                "final_runs": int(ends.get(k, 0)),
            }
        )
    edge_entries = [_edge_entry(row, entries, model.means_, features) for row in edges.itertuples()]
    visited = [k for k in range(n_states) if visiting[k] > 0]
    return {
        "n_states": n_states,
        "forking": is_forking(edges, visited),
        "features": list(features),
        "n_runs": int(states["seed"].nunique()),
        "initial_states": sorted(int(k) for k in starts.index),
        "final_states": sorted(int(k) for k in ends.index),
        "order": order,
        "state_labels": STATE_LABELS,
        "edge_labels": EDGE_LABELS,
        "states": state_entries,
        "edges": edge_entries,
    }


def _edge_entry(
    row, entries: dict[tuple[int, int], tuple[np.ndarray, int]], means: np.ndarray, features
) -> dict:
    source, target = int(row.source), int(row.target)
    changes = {}
    if source != target:
        importance, _ = entries[(source, target)]
        for f in top_features(importance, features):
            i = features.index(f)
            changes[f] = float(means[target, i] - means[source, i])
    return {
        "source": source,
        "target": target,
        "probability": float(row.probability),
        "runs": int(row.runs),
        # null without convergence times (a setting without a convergence column)
        "mean_convergence": None if pd.isna(row.mean_convergence) else float(row.mean_convergence),
        "feature_changes": changes,
        "occurrences": int(row.occurrences),
        "runs_censored": int(row.runs_censored),
        "runs_unmeasured": int(row.runs_unmeasured),
    }


def mark_detours(training_map: dict, detours: pd.DataFrame) -> dict:
    """Copy of ``training_map`` whose states carry ``kind`` (``detour``, ``dead_end`` or
    empty), ``is_detour`` and ``converged_runs_visiting`` from the detour table
    (trainmap.maps.detours.read_detour_table)."""
    rows = detours.set_index(detours["state"].astype(int))
    states = []
    for state in training_map["states"]:
        k = state["id"]
        kind = str(rows.at[k, "kind"]) if k in rows.index else ""
        converged = rows.at[k, "converged_runs_visiting"] if k in rows.index else 0
        # null without convergence times (a checkpoint series without evals)
        converged = None if pd.isna(converged) else int(converged)
        states.append(
            {**state, "kind": kind, "is_detour": kind == "detour",
             "converged_runs_visiting": converged}
        )  # fmt: skip
    return {**training_map, "states": states}
