"""The selection figure: validation BIC (and log-likelihood) per state count K."""

import textwrap
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from trainmap.hmm.selection import guard_note


def plot_selection(selection: dict[str, Any], setting: str) -> Figure:
    """Validation log-likelihood (kept model; restart mean +/- SD) and AIC/BIC against K,
    the selected K marked."""
    rows = selection["scores"]
    ks = np.array([row["n_states"] for row in rows])

    def column(key: str) -> np.ndarray:
        return np.array([row.get(key, np.nan) for row in rows], dtype=float)

    chosen = selection["n_states"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    left.errorbar(
        ks,
        column("mean_val_loglik"),
        yerr=column("sd_val_loglik"),
        fmt="o--",
        color="tab:gray",
        capsize=3,
        label="restart mean ± SD",
    )
    left.plot(ks, column("val_loglik"), "o-", color="tab:blue", label="kept model")
    left.set_ylabel("validation log-likelihood (nats)")
    left.set_title("fit to held-out runs (higher is better)", fontsize="medium")
    right.plot(ks, column("val_aic"), "s-", color="tab:orange", label="AIC (kept model)")
    right.plot(ks, column("val_bic"), "o-", color="tab:green", label="BIC (kept model)")
    right.plot(
        ks, column("mean_val_bic"), "o--", color="tab:green", alpha=0.5, label="BIC (restart mean)"
    )
    guarded = column("guard_iterations") > 0
    if guarded.any():
        right.plot(
            ks[guarded],
            column("val_bic")[guarded],
            "o",
            ms=13,
            mfc="none",
            mec="tab:red",
            mew=1.5,
            label="kept model changed by the covariance guard",
        )
    selected_bic = column("val_bic")[ks == chosen]
    right.plot(
        [chosen], selected_bic, "*", color="black", markersize=16, label=f"selected K = {chosen}"
    )
    right.set_ylabel("validation criterion (lower is better)")
    right.set_title("information criteria on held-out runs", fontsize="medium")
    for ax in (left, right):
        ax.axvline(chosen, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("number of states K")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"{setting}: number of states by validation BIC (selected K = {chosen})")
    note = guard_note(selection)
    if note:
        fig.supxlabel(textwrap.fill(note, 150), fontsize="small", color="tab:red")
    return fig
