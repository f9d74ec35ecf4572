"""Whether the data can carry the fit: notes the workflow logs and puts on the map.

None of these stops the workflow: each says what was found and what to change, once in
the log (as a warning) and again in ``summary.md`` and on the map pages.

- **Mixed step grids**: the HMM counts checkpoints, not steps, so runs logged every 20 and
  every 40 steps give dwell times on two scales.
- **Parameters against fit rows**: a Gaussian HMM with K states, F features and full
  covariance has (K-1) + K(K-1) + KF + KF(F+1)/2 free parameters (``n_free_parameters``).
  A candidate K with more parameters than fit rows (checkpoints of the fit runs) cannot be
  estimated, and BIC then picks a small K whatever the data say (14 features, full
  covariance: K=2 has 241 parameters). The note names the largest K the rows carry.
- **Near-identical state means**: two states whose means differ by less than
  ``NEAR_MEANS`` z units in every feature are one state drawn twice.
- **Negligible transitions**: a decoded path that takes a transition the model gives a
  probability below ``NEGLIGIBLE`` (1e-35 has been seen) is Viterbi forced by the
  emissions, not a road the model learned.
"""

import numpy as np
import pandas as pd

from trainmap.hmm.fit import n_free_parameters
from trainmap.io.files import plain

NEAR_MEANS = 0.1  # z units (SDs of each feature), largest difference over the features
NEGLIGIBLE = 1e-6  # learned transition probability


def step_grids(runs: pd.DataFrame) -> dict[int, list]:
    """Each run's logging interval (the median step between its checkpoints) -> the runs
    with it, sorted; runs with one checkpoint have none."""
    grids: dict[int, list] = {}
    for run, steps in runs.sort_values(["seed", "step"]).groupby("seed")["step"]:
        if len(steps) > 1:
            interval = int(np.median(np.diff(steps.to_numpy())))
            grids.setdefault(interval, []).append(plain(run))
    return dict(sorted(grids.items()))


def step_grid_note(runs: pd.DataFrame) -> str | None:
    """A note when the runs log on different step grids, naming them; else None."""
    grids = step_grids(runs)
    if len(grids) < 2:
        return None
    parts = [
        f"every {interval} steps (seed(s) {_listed(seeds)})" for interval, seeds in grids.items()
    ]
    return (
        f"runs log on different step grids: {'; '.join(parts)}. The HMM counts checkpoints, "
        "so dwell times mix the scales: log every seed at the same interval"
    )


def parameter_note(
    states: list[int], n_features: int, n_fit_rows: int, covariance: str
) -> str | None:
    """A note when some candidate K has more free parameters than fit rows; else None."""
    counts = {k: n_free_parameters(k, n_features, covariance) for k in sorted(states)}
    thin = [k for k, p in counts.items() if p > n_fit_rows]
    if not thin:
        return None
    carried = [k for k, p in counts.items() if p <= n_fit_rows]
    largest = f"the largest K they carry is K={max(carried)}" if carried else "no candidate K fits"
    first = thin[0]
    advice = ["fewer features (features:)"]
    if covariance == "full":
        diag = n_free_parameters(first, n_features, "diag")
        advice.append(f"covariance: diag (K={first}: {diag} parameters)")
    advice.append("more runs or checkpoints")
    return (
        f"hmm.states: K={_ks(thin)} have more free parameters than the {n_fit_rows} fit rows "
        f"(K={first}: {counts[first]} with {n_features} features, {covariance} covariance), "
        f"so BIC favours small K whatever the data; {largest}. Use {', or '.join(advice)}"
    )


def near_means_note(means: np.ndarray, tolerance: float = NEAR_MEANS) -> str | None:
    """A note naming pairs of states whose means (n_states, n_features; z units) differ by
    less than ``tolerance`` in every feature; else None."""
    pairs = []
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            gap = float(np.max(np.abs(means[i] - means[j])))
            if gap < tolerance:
                pairs.append(f"S{i} and S{j} (largest difference {gap:.2g} z)")
    if not pairs:
        return None
    return (
        f"near-identical state means: {', '.join(pairs)}: the map may draw one phase as two "
        "states; fewer states (hmm.states) or more distinct features would tell them apart"
    )


def negligible_transitions_note(
    states: pd.DataFrame, transmat: np.ndarray, floor: float = NEGLIGIBLE
) -> str | None:
    """A note naming decoded transitions i -> j (states: ``seed, step, state``) whose
    learned probability ``transmat[i, j]`` is below ``floor``; else None."""
    paths = states.sort_values(["seed", "step"], kind="stable")
    source = paths.groupby("seed")["state"].shift(1)
    pairs = pd.DataFrame({"seed": paths["seed"], "source": source, "target": paths["state"]})
    pairs = pairs.dropna(subset=["source"]).astype({"source": int, "target": int})
    pairs["probability"] = transmat[pairs["source"], pairs["target"]]
    rare = pairs[pairs["probability"] < floor]
    if rare.empty:
        return None
    listed = [
        f"S{s}→S{t} (probability {group['probability'].iloc[0]:.1e}, seed(s) "
        f"{_listed(sorted(plain(x) for x in group['seed'].unique()))})"
        for (s, t), group in rare.groupby(["source", "target"])
    ]
    return (
        f"decoded paths take transitions the model gives negligible probability (< {floor:g}): "
        f"{'; '.join(listed)}; the emissions forced them, the map's edges there are no "
        "learned road"
    )


def _ks(ks: list[int]) -> str:
    """``[2, 3, 4]`` -> ``2..4``; ``[2, 5]`` -> ``2, 5``."""
    if len(ks) > 2 and ks == list(range(ks[0], ks[-1] + 1)):
        return f"{ks[0]}..{ks[-1]}"
    return ", ".join(map(str, ks))


def _listed(items: list, limit: int = 8) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (", ..." if len(items) > limit else "")
