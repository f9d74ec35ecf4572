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
    chosen = selection["n_states"]
    folded = any("fold_val_bic" in row for row in rows)
    resampled = "val_bic" in (selection.get("resamples") or {})
    panels = 2 + folded + resampled
    fig = Figure(figsize=(5 * panels, 4.6), layout="constrained")
    axes = fig.subplots(1, panels, sharex=True)
    _loglik_panel(axes[0], rows, ks)
    _criteria_panel(axes[1], selection, ks, folded, resampled)
    if folded:
        _fold_curves(axes[2], rows, selection)
    if resampled:
        _resample_curves(axes[-1], selection)
    for ax in axes:
        ax.axvline(chosen, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("number of states K")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    by = "over resamples" if resampled else "by validation BIC"
    fig.suptitle(
        f"{setting}: number of states {by} (selected K = {chosen}; "
        f"agreeing: {stability_text(selection)})"
    )
    notes = selection_notes(selection) + [n for n in [guard_note(selection)] if n]
    if notes:
        text = "\n".join(textwrap.fill(note, 150) for note in notes)
        fig.supxlabel(text, fontsize="small", color="tab:red")
    return fig


def _column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    """One score of every K (NaN where a row lacks it)."""
    return np.array([row.get(key, np.nan) for row in rows], dtype=float)


def _loglik_panel(ax, rows: list[dict[str, Any]], ks: np.ndarray) -> None:
    """Validation log-likelihood of the kept model and of the restarts (mean +/- SD)."""
    ax.errorbar(
        ks,
        _column(rows, "mean_val_loglik"),
        yerr=_column(rows, "sd_val_loglik"),
        fmt="o--",
        color="tab:gray",
        capsize=3,
        label="restart mean ± SD",
    )
    ax.plot(ks, _column(rows, "val_loglik"), "o-", color="tab:blue", label="kept model")
    ax.set_ylabel("validation log-likelihood (nats)")
    ax.set_title("fit to held-out runs (higher is better)", fontsize="medium")


def _criteria_panel(
    ax, selection: dict[str, Any], ks: np.ndarray, folded: bool, resampled: bool
) -> None:
    """AIC and BIC of the kept models, each restart's BIC, the covariance guard's changes
    and the selected K."""
    rows, chosen = selection["scores"], selection["n_states"]
    _restart_dots(ax, rows)
    ax.plot(ks, _column(rows, "val_aic"), "s-", color="tab:orange", label="AIC (kept model)")
    ax.plot(ks, _column(rows, "val_bic"), "o-", color="tab:green", label="BIC (kept model)")
    ax.plot(
        ks,
        _column(rows, "mean_val_bic"),
        "o--",
        color="tab:green",
        alpha=0.5,
        label="BIC (restart mean)",
    )
    guarded = _column(rows, "guard_iterations") > 0
    if guarded.any():
        ax.plot(
            ks[guarded],
            _column(rows, "val_bic")[guarded],
            "o",
            ms=13,
            mfc="none",
            mec="tab:red",
            mew=1.5,
            label="kept model changed by the covariance guard",
        )
    selected_bic = _column(rows, "val_bic")[ks == chosen]
    label = f"selected K = {chosen}"
    ax.plot([chosen], selected_bic, "*", color="black", markersize=16, label=label)
    _mark_edge(ax, selection, float(selected_bic[0]))
    ax.set_ylabel("validation criterion (lower is better)")
    what = "summed over folds" if folded else "on held-out runs"
    what += " (the configured split)" if resampled and not folded else ""
    if selection.get("held_out") == "in-sample":  # selection time, a run too short for blocks
        what = "in sample (too few checkpoints for held-out blocks)"
    ax.set_title(f"information criteria {what}", fontsize="medium")


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


def _resample_curves(ax, selection: dict[str, Any]) -> None:
    """Each resample's validation BIC above its own lowest, against K, and their median
    (the default rule's curve, trainmap.hmm.selection); the selected K starred."""
    resamples = selection["resamples"]
    ks = sorted(int(k) for k in resamples["val_bic"])
    table = np.array([resamples["val_bic"][str(k)] for k in ks])  # (K, resamples)
    above = table - table.min(axis=0)
    for r in range(above.shape[1]):
        ax.plot(ks, above[:, r], "o-", ms=3, alpha=0.35, color="tab:purple",
                label="each resample" if r == 0 else None)  # fmt: skip
    median = np.median(above, axis=1)
    ax.plot(ks, median, "o-", color="black", label="median over resamples")
    chosen = selection["n_states"]
    if chosen in ks:
        ax.plot([chosen], [median[ks.index(chosen)]], "*", ms=16, color="black")
    ax.set_ylabel("validation BIC above the resample's lowest")
    ax.set_title(
        f"{len(resamples['picks'])} resamples (rule: {resamples['rule']})", fontsize="medium"
    )
