"""The training map (METHOD.md section 5): states, observed transitions and their labels.

Decisions:

- **Edges** are the transitions i -> j (self-loops included) that occur in at least one
  decoded path; ``probability`` is the learned transition probability, ``runs`` the
  number of runs taking the edge at least once, ``mean_convergence`` the mean
  convergence time of those runs, with censored runs at their censoring time (their last
  step, as in the regression) and counted in ``runs_censored``.
- **State labels**: the importance of feature f for entering state k at checkpoint t is
  |d log p(s_t = k | z_1..t) / d z_t[f]| (trainmap.filtering). It is evaluated at the
  first checkpoint of every visit to k: the step after a transition j -> k, or t = 0 for
  a run that *starts* in k. The initial state is entered without a transition, and the
  learned start probabilities are usually one-hot (every run starts in the same state),
  which makes p(s_0 | z_0) certain and its derivative zero for every feature; so at t = 0
  the posterior uses a uniform prior over states, p(s_0 = k | z_0) proportional to
  N(z_0; mu_k, P_k): the features that tell the initial state apart from the others. The
  absolute vectors are averaged over all entries into k (every incoming transition and
  every start) and the top 3 features label the state.
- **Edge labels**: the same importance averaged over the occurrences of that transition
  j -> k only, its top 3 features, with the change of their state means mu_k - mu_j in
  z units (sign = direction). Self-loops have no entry and no feature changes (``{}``).
- **forking**: the non-self-loop edges between visited states do not form one simple
  directed path (a branch, a merge, a cycle, or disconnected pieces).
"""

from collections import defaultdict

import networkx as nx
import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM

from trainmap.detours import mean_first_visit, runs_visiting, training_order
from trainmap.filtering import emission_posteriors, feature_importance, filtering_posteriors

TOP_FEATURES = 3
START = -1  # source id of the "entry" of a run's first state (not a state)


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
    by seed, ``convergence_step`` and ``censored`` (trainmap.detours.convergence_times).
    Returns ``source, target, probability, runs, occurrences, mean_convergence,
    runs_censored``, sorted by source and target.
    """
    pairs = transitions(states)
    missing = set(states["seed"]) - set(convergence.index)
    if missing:
        raise ValueError(f"runs without a convergence time: {sorted(missing)}")
    taken = pairs.drop_duplicates(["seed", "source", "target"])
    taken = taken.join(convergence[["convergence_step", "censored"]], on="seed")
    edges = taken.groupby(["source", "target"]).agg(
        runs=("seed", "size"),
        mean_convergence=("convergence_step", "mean"),
        runs_censored=("censored", "sum"),
    )
    edges["occurrences"] = pairs.groupby(["source", "target"]).size()
    edges = edges.reset_index()
    edges["probability"] = transmat[edges["source"], edges["target"]]
    columns = ["source", "target", "probability", "runs", "occurrences"]
    return edges[columns + ["mean_convergence", "runs_censored"]]


def entry_importance(
    model: GaussianHMM, features: list[str], sequences: pd.DataFrame, states: pd.DataFrame
) -> dict[tuple[int, int], tuple[np.ndarray, int]]:
    """Mean absolute posterior gradient at the first checkpoint of each entry into a state.

    sequences: ``seed, step`` and the z-scored ``features`` (the HMM's inputs); states:
    ``seed, step, state`` for the same rows. Returns {(source, target): (mean |gradient|
    of state target, shape (n_features,), number of entries)}; source is ``START`` for a
    run's first state (evaluated at t = 0 with a uniform prior, see the module docstring).
    """
    table = states[["seed", "step", "state"]].merge(
        sequences, on=["seed", "step"], how="left", validate="one_to_one"
    )
    if table[features].isna().any().any():
        raise ValueError("states.parquet has checkpoints without (finite) features")
    sums: dict[tuple[int, int], np.ndarray] = defaultdict(lambda: np.zeros(len(features)))
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for _, run in table.sort_values(["seed", "step"], kind="stable").groupby("seed"):
        X = run[features].to_numpy(dtype=float)
        path = run["state"].to_numpy()
        posteriors = filtering_posteriors(model, X)
        posteriors[0] = emission_posteriors(model, X[:1])[0]  # t = 0: uniform prior
        importance = feature_importance(model, X, posteriors)
        entries = np.flatnonzero(np.r_[True, path[1:] != path[:-1]])
        for t in entries:
            key = (START if t == 0 else int(path[t - 1]), int(path[t]))
            sums[key] += importance[t, path[t]]
            counts[key] += 1
    return {key: (sums[key] / counts[key], counts[key]) for key in sums}


def top_features(importance: np.ndarray, features: list[str], n: int = TOP_FEATURES) -> list[str]:
    """Names of the n largest entries (ties keep feature order)."""
    order = np.argsort(-importance, kind="stable")
    return [features[i] for i in order[:n]]


def state_importance(
    entries: dict[tuple[int, int], tuple[np.ndarray, int]], n_states: int, n_features: int
) -> np.ndarray:
    """Importance of each feature for each state, pooled over all its entries: (K, F).

    NaN rows for states never entered.
    """
    sums, counts = np.zeros((n_states, n_features)), np.zeros(n_states)
    for (_, target), (mean, count) in entries.items():
        sums[target] += mean * count
        counts[target] += count
    with np.errstate(invalid="ignore"):  # 0/0 = NaN marks an unvisited state
        return sums / counts[:, None]


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
    (trainmap.detours.convergence_times).
    """
    n_states, n_features = model.n_components, len(features)
    edges = edge_table(states, model.transmat_, convergence)
    entries = entry_importance(model, features, sequences, states)
    per_state = state_importance(entries, n_states, n_features)
    visiting = runs_visiting(states, n_states)
    first_steps = mean_first_visit(states, n_states)
    occupancy = states["state"].value_counts(normalize=True).reindex(range(n_states), fill_value=0)
    paths = states.sort_values(["seed", "step"], kind="stable").groupby("seed")["state"]
    starts, ends = paths.first().value_counts(), paths.last().value_counts()
    order = training_order(states, n_states)
    state_entries = []
    for k in range(n_states):
        entered = not np.isnan(per_state[k]).any()
        top = top_features(per_state[k], features) if entered else []
        state_entries.append(
            {
                "id": k,
                "top_features": top,
                "runs_visiting": int(visiting[k]),
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
    }


def mark_detours(training_map: dict, detours: pd.DataFrame) -> dict:
    """Copy of ``training_map`` whose states carry ``is_detour`` from the detour table."""
    flags = dict(zip(detours["state"].astype(int), detours["is_detour"].astype(bool), strict=True))
    states = [{**s, "is_detour": flags.get(s["id"], False)} for s in training_map["states"]]
    return {**training_map, "states": states}
