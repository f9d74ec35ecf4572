"""The selection figure: validation BIC (and log-likelihood) per state count K, every
restart's BIC (and, with kfold, every fold's curve), the edge of the candidates called out."""

import textwrap
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from trainmap.hmm.selection import guard_note, selection_notes, stability_text


def plot_selection(selection: dict[str, Any], setting: str) -> Figure:
    """Validation log-likelihood (kept model; restart mean +/- SD) and AIC/BIC against K,
    each restart's BIC as a dot (its spread), the selected K marked; with ``kfold`` a third
    panel with every fold's BIC curve. A K at the edge of the candidates is called out."""
    rows = selection["scores"]
    ks = np.array([row["n_states"] for row in rows])

    def column(key: str) -> np.ndarray:
        return np.array([row.get(key, np.nan) for row in rows], dtype=float)

    chosen = selection["n_states"]
    folded = any("fold_val_bic" in row for row in rows)
    fig = Figure(figsize=(15 if folded else 10, 4.6), layout="constrained")
    axes = fig.subplots(1, 3 if folded else 2, sharex=True)
    left, right = axes[0], axes[1]
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
    _restart_dots(right, rows)
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
    _mark_edge(right, selection, float(selected_bic[0]))
    right.set_ylabel("validation criterion (lower is better)")
    what = "summed over folds" if folded else "on held-out runs"
    if selection.get("held_out") == "in-sample":  # selection time, a run too short for blocks
        what = "in sample (too few checkpoints for held-out blocks)"
    right.set_title(f"information criteria {what}", fontsize="medium")
    if folded:
        _fold_curves(axes[2], rows, selection)
    for ax in axes:
        ax.axvline(chosen, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("number of states K")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(
        f"{setting}: number of states by validation BIC (selected K = {chosen}; "
        f"agreeing: {stability_text(selection)})"
    )
    notes = selection_notes(selection) + [n for n in [guard_note(selection)] if n]
    if notes:
        text = "\n".join(textwrap.fill(note, 150) for note in notes)
        fig.supxlabel(text, fontsize="small", color="tab:red")
    return fig


def _restart_dots(ax, rows: list[dict[str, Any]]) -> None:
    """Every restart's validation BIC (summed over folds with kfold), spread a little in x."""
    xs, ys = [], []
    for row in rows:
        values = [v for v in row.get("restart_val_bic") or [] if v is not None]
        offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
        xs += [row["n_states"] + o for o in offsets[: len(values)]]
        ys += values
    if ys:
        ax.plot(xs, ys, ".", color="tab:green", alpha=0.45, ms=6, label="BIC per restart")


def _mark_edge(ax, selection: dict[str, Any], bic: float) -> None:
    """An arrow past the edge of the candidates when K sits there: BIC had not turned."""
    if selection.get("at_largest_candidate") and len(selection["scores"]) > 1:
        text, direction = "largest candidate:\nBIC still falling,\nwiden hmm.states", 1
    elif selection.get("at_smallest_candidate") and len(selection["scores"]) > 1:
        text, direction = "smallest candidate:\nBIC still falling,\nwiden hmm.states", -1
    else:
        return
    k = selection["n_states"]
    # BIC falls towards the edge, so the corner above the edge is free: the text goes
    # there (axes fraction), whatever the number of candidates.
    ax.annotate(
        text,
        xy=(k + 0.45 * direction, bic),
        xytext=(0.5 + 0.32 * direction, 0.62),
        textcoords="axes fraction",
        ha="center",
        va="bottom",
        color="tab:red",
        fontsize="small",
        arrowprops={"arrowstyle": "->", "color": "tab:red"},
    )
    ax.set_xlim(min(ax.get_xlim()[0], k - 0.6), max(ax.get_xlim()[1], k + 0.6))


def _fold_curves(ax, rows: list[dict[str, Any]], selection: dict[str, Any]) -> None:
    """Each fold's validation BIC against K, its own pick marked (``fold_n_states``)."""
    ks = [row["n_states"] for row in rows]
    for fold, pick in enumerate(selection.get("fold_n_states") or []):
        bic = [row["fold_val_bic"][fold] for row in rows]
        bic = np.array([np.nan if b is None else b for b in bic], dtype=float)
        (line,) = ax.plot(ks, bic, "o-", ms=3, alpha=0.8, label=f"fold {fold} (picks K = {pick})")
        if pick is not None:
            ax.plot([pick], bic[ks.index(pick)], "*", ms=11, color=line.get_color())
    ax.set_ylabel("validation BIC of the fold's kept model")
    ax.set_title("each fold alone (its runs held out)", fontsize="medium")
