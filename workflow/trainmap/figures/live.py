"""The live map's evaluation figure (rule evaluate_live_map, docs/live.md): the error of
each method's predicted convergence step, and how well it picks out the slowest runs,
against the fraction of the way to the median convergence step seen."""

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from trainmap.figures.style import DETOUR, INK, PALETTE

LABELS = {
    "map": "live map (Kaplan-Meier by state)",
    "mean_remaining": "(a) mean of runs not yet converged",
    "curve_extrapolation": "(b) logistic extrapolation",
    "slope_regression": "(c) regression on value and slope",
}
COLORS = {"map": DETOUR, "mean_remaining": PALETTE[0], "curve_extrapolation": PALETTE[1],
          "slope_regression": PALETTE[2]}  # fmt: skip


def plot_evaluation(evaluation: dict[str, Any]) -> Figure:
    """Left: mean absolute error (steps) over the held-out runs that converged after the
    cut; right: AUROC for the slowest quarter of runs (the map also by ``p_detour``)."""
    scores = evaluation["scores"]
    fractions = np.array([s["fraction"] for s in scores])
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    for method in evaluation["methods"]:
        style = dict(color=COLORS[method], marker="o", label=LABELS[method],
                     linewidth=2.2 if method == "map" else 1.4)  # fmt: skip
        left.plot(fractions, _values(scores, method, "mae"), **style)
        right.plot(fractions, _values(scores, method, "auroc_slowest"), **style)
    right.plot(fractions, _values(scores, "map", "auroc_slowest_p_detour"), color=DETOUR,
               linestyle="--", marker="s", label="live map, P(detour or dead end)")  # fmt: skip
    right.axhline(0.5, color=INK, linewidth=0.8, linestyle=":")
    right.set_ylim(0, 1.02)
    left.set_ylabel("mean absolute error (steps)")
    left.set_title("predicted convergence step (runs converging after the cut)",
                   fontsize="medium")  # fmt: skip
    right.set_ylabel("AUROC")
    right.set_title(f"finding the slowest {evaluation['slowest_share']:.0%} of runs",
                    fontsize="medium")  # fmt: skip
    for axis in (left, right):
        axis.set_xlabel("fraction of the fit runs' median convergence step seen")
        axis.set_xticks(fractions)
    right.legend(fontsize="small", loc="lower right")
    counts = ", ".join(f"{s['fraction']:g}: {s['n_predicted']}" for s in scores)
    fig.suptitle(
        f"{evaluation['setting']}: live predictions, {len(evaluation['folds'])}-fold over "
        f"runs, K = {evaluation['n_states']} (held-out runs still training at each "
        f"fraction: {counts})",
        fontsize="medium",
    )
    return fig


def _values(scores, method, key) -> np.ndarray:
    return np.array([np.nan if s[method][key] is None else s[method][key] for s in scores])
