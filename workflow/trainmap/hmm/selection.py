"""Choose the number of states K from the per-K fits (METHOD.md section 4).

**Decision** (METHOD.md): the selected K is the one whose kept model (best validation
log-likelihood over restarts) has the lowest validation BIC. Exact ties go to the
smaller K (the simpler model). The authors' rule, the lowest BIC averaged over
restarts, is reported beside it (``mean_n_states``) but not used: one bad restart
would veto a K.

The HMM fits are hmmlearn's EM unless the covariance guard stepped in (trainmap.hmm.fit).
Whenever it did, in any restart of any K, ``selection.json`` says so in
``covariance_guard`` (and each score row in ``guard_iterations``/``guard_restarts``), and
the selection figure marks the K and names it: those scores are not plain hmmlearn's.

**Edge of the range.** When the selected K is the largest candidate
(``at_largest_candidate``), or the smallest one above 1 (``at_smallest_candidate``), BIC
did not turn: the data say "at least K" (or "at most K"), not K. Both flags are always in
selection.json; the job logs a warning, the figure and summary.md say so.

**Resamples** (``stability: {resamples: R}``, trainmap.hmm.resample). Each resample
redraws the split and the restarts and scores every K on its own validation runs; with
resamples K comes from all of them, so the K a reader is told is a property of the runs,
not of ``hmm.seed``. **Decision** (``stability.rule``, bench/bench_stability.py and
docs/stability.md): ``lowest_median`` (default), the K whose validation BIC is least
above each resample's lowest in the typical resample (the median over resamples of that
gap: paired, as a split shifts every K's BIC together by thousands). On the default
parity runs BIC is nearly flat from K = 5 to 8 and EM's optima for 6 or more states are
rugged: a resample where EM lands on an unusually good optimum for a large K moves the
mean (and, through its noisy gap, a one-standard-error band) but not the median.
``one_se`` (the smallest K within one standard error of the lowest mean, paired over
resamples), ``lowest_mean`` and ``most_picked`` (the K most resamples pick alone) are
the alternatives.
``resamples`` lists every pick, their counts, each K's mean and SE and what each rule
picks; ``split_n_states`` keeps what the configured split alone picks. When no more than
half of the resamples pick the selected K alone, a note says that one split does not
settle K and which rule over the resamples picked it.

**Stability.** Each restart index r gives one replicate choice: the K whose restart r has
the lowest validation BIC (restarts of different K have their own seeds, so replicates
are independent draws of EM's randomness). ``stability.restarts`` lists those picks and
the share that agrees with the selected K; under ``selection: kfold`` ``stability.folds``
does the same for the K each fold alone picks. A share below ``LOW_SHARE`` gets a note.

**Over time** (``selection: time``, trainmap.hmm.time_selection): the folds are folds of
blocks of consecutive checkpoints, with the kfold keys (``folds``, ``fold_n_states``,
``stability.folds``), ``selection: "time"`` and ``held_out: "blocks"``; or, for runs too
short for blocks, ``held_out: "in-sample"`` (K by the in-sample BIC, with a note).
"""

import logging
from typing import Any

import numpy as np

from trainmap.hmm.blocks import BLOCKS, IN_SAMPLE, SELECTION

log = logging.getLogger(__name__)

ROW_KEYS = ("train_loglik", "val_loglik", "val_aic", "val_bic")
MEAN_KEYS = ("val_loglik", "val_aic", "val_bic")
# At or below this share of replicates (restarts, folds or resamples) agreeing, K is
# called unstable: at least as many replicates would have reported another K.
LOW_SHARE = 0.5


def score_table(fits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per K (sorted): the kept model's scores, restart means and SDs.

    ``fits``: ``k<K>.json`` contents; only ``n_states`` and the four scores are required,
    ``mean``/``sd``/``n_params``/``n_failed`` are copied when present.
    """
    rows = []
    for fit in sorted(fits, key=lambda f: f["n_states"]):
        row = {"n_states": int(fit["n_states"])}
        row.update({key: fit[key] for key in ROW_KEYS if key in fit})
        for key in MEAN_KEYS:
            if key in fit.get("mean", {}):
                row[f"mean_{key}"] = fit["mean"][key]
            if key in fit.get("sd", {}):
                row[f"sd_{key}"] = fit["sd"][key]
        for key in ("n_params", "n_failed"):
            if key in fit:
                row[key] = fit[key]
        if "cv" in fit:  # selection: kfold (trainmap.hmm.kfold): scores per fold and restart
            for key in ("fold_val_bic", "fold_val_loglik", "restart_val_bic"):
                row[key] = fit["cv"][key]
        elif "restarts" in fit:  # null where a restart failed
            row["restart_val_bic"] = [r.get("val_bic") for r in fit["restarts"]]
        if "guard" in fit:
            per_restart = [n for n in fit["guard"]["per_restart"] if n is not None]
            row["guard_iterations"] = fit["guard"]["iterations"]  # the kept model's
            row["guard_restarts"] = sum(n > 0 for n in per_restart)
        rows.append(row)
    ks = [row["n_states"] for row in rows]
    if len(set(ks)) != len(ks):
        raise ValueError(f"duplicate state counts among the fits: {ks}")
    return rows


def lowest(rows: list[dict[str, Any]], key: str) -> int | None:
    """K with the lowest finite ``key``; ties go to the smaller K. None if none is finite."""
    finite = [row for row in rows if key in row and np.isfinite(row[key])]
    if not finite:
        return None
    best = min(row[key] for row in finite)
    return min(row["n_states"] for row in finite if row[key] == best)


def select_state_count(
    fits: list[dict[str, Any]],
    resamples: list[dict[str, Any]] | None = None,
    rule: str = "lowest_median",
) -> dict[str, Any]:
    """``selection.json``: ``{"n_states", "criterion": "bic", "scores": [...]}`` and the
    restart-mean choice ``mean_n_states`` for comparison.

    ``resamples``: per resample ``{"n_states": its pick, "scores": [{"n_states",
    "val_bic"}, ...]}`` (trainmap.hmm.resample); when given, K follows ``rule``
    (``RESAMPLE_RULES``, see the module docstring) over them."""
    if not fits:
        raise ValueError("no fits to select from")
    rows = score_table(fits)
    selected = lowest(rows, "val_bic")
    if selected is None:
        raise ValueError("no state count has a finite validation BIC")
    split_selected = selected
    summary = resample_summary(resamples, rule) if resamples else None
    if summary:
        selected = summary["n_states"]
    selection = {
        "n_states": selected,
        "criterion": "bic",
        "selection": "split",
        "rule": "lowest validation BIC of the kept model; ties go to the smaller K",
        "mean_n_states": lowest(rows, "mean_val_bic"),
        **edge_flags([row["n_states"] for row in rows], selected),
        "stability": {"restarts": agreement(restart_picks(rows), selected)},
        "covariance_guard": guard_summary(fits),
        "scores": rows,
    }
    if any("fold_val_bic" in row for row in rows):
        fold_picks = restart_picks(rows, "fold_val_bic")
        selection["rule"] = (
            "lowest validation BIC summed over folds (each fold's kept model); "
            "ties go to the smaller K"
        )
        selection["selection"] = "kfold"
        selection["folds"] = len(fold_picks)
        selection["fold_n_states"] = fold_picks
        selection["stability"]["folds"] = agreement(fold_picks, selected)
    if any(fit.get("selection") == SELECTION for fit in fits):
        selection.update(_over_time(fits))
    if summary:
        selection["rule"] = RESAMPLE_RULES[rule]
        selection["split_n_states"] = split_selected
        selection["resamples"] = summary
        selection["stability"]["resamples"] = agreement(summary["picks"], selected)
    warn_about(selection)
    return selection


TIME_RULES = {
    BLOCKS: (
        "lowest held-out BIC summed over the folds of blocks of consecutive checkpoints "
        "(each block scored given the checkpoints before it; each fold's kept model); "
        "ties go to the smaller K"
    ),
    IN_SAMPLE: (
        "lowest in-sample BIC of a fit on every checkpoint (the run is too short for "
        "held-out blocks); ties go to the smaller K"
    ),
}


def _over_time(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """selection.json's keys under ``selection: time``: how K was scored."""
    held = {fit.get("held_out") for fit in fits}
    if len(held) != 1 or not held <= set(TIME_RULES):
        scored = sorted(map(str, held))
        raise ValueError(f"fits over time scored as {scored}: expected one of {sorted(TIME_RULES)}")
    (how,) = held
    return {"selection": SELECTION, "held_out": how, "rule": TIME_RULES[how]}


RESAMPLE_RULES = {
    "lowest_median": (
        "the K whose validation BIC is least above each resample's lowest, in the typical "
        "resample (median over the resamples; each resample: its kept model per K); ties "
        "go to the smaller K"
    ),
    "one_se": (
        "the smallest K whose validation BIC, averaged over the resamples, is above the "
        "lowest average by at most one standard error of the paired difference (each "
        "resample: its kept model per K)"
    ),
    "lowest_mean": "the lowest validation BIC averaged over the resamples; ties to the smaller K",
    "most_picked": (
        "the K most resamples pick (each: the lowest validation BIC of its kept model per "
        "K); ties go to the smaller K"
    ),
}


def resample_summary(resamples: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    """K by ``rule`` over the resamples, with each K's validation BIC per resample, their
    median and mean, the standard error of its gap to the best mean, every pick and their
    counts, and what each rule picks (``by_rule``).

    ``lowest_median``: the lowest median over the resamples of K's BIC above the
    resample's lowest (paired; ties to the smaller K).
    ``one_se``: the smallest K whose mean BIC exceeds the lowest mean by at most the
    standard error of that gap (paired over resamples: SD (ddof=1) of the per-resample
    differences / sqrt(resamples)). Resamples share most of their runs, so the SE is a
    lower bound and the rule a mild one."""
    if rule not in RESAMPLE_RULES:
        raise ValueError(f"stability.rule: {rule!r} is not one of {sorted(RESAMPLE_RULES)}")
    picks = [int(r["n_states"]) for r in resamples]
    bics: dict[int, list[float]] = {}
    for resample in resamples:
        for row in resample["scores"]:
            if row["val_bic"] is not None and np.isfinite(row["val_bic"]):
                bics.setdefault(int(row["n_states"]), []).append(float(row["val_bic"]))
    ks = sorted(k for k, values in bics.items() if len(values) == len(resamples))
    if not ks:
        raise ValueError("no state count has a finite validation BIC in every resample")
    mean = {k: float(np.mean(bics[k])) for k in ks}
    # Each resample's BIC of K above its best K: a split moves every K's BIC together by
    # thousands, so unpaired medians of different K may come from different splits.
    table = np.array([bics[k] for k in ks])  # (K, resamples)
    above = table - table.min(axis=0)
    median = {k: float(np.median(row)) for k, row in zip(ks, above, strict=True)}
    best = min(ks, key=lambda k: (mean[k], k))
    # Paired: each resample's BIC of K minus its BIC of the best K. The resamples' splits
    # move every K's BIC together, which an unpaired SE would count as uncertainty.
    gap = {k: np.subtract(bics[k], bics[best]) for k in ks}
    se = {k: float(np.std(gap[k], ddof=1) / np.sqrt(len(gap[k]))) if len(picks) > 1 else 0.0
          for k in ks}  # fmt: skip
    chosen = {
        "lowest_median": min(ks, key=lambda k: (median[k], k)),
        "one_se": min(k for k in ks if mean[k] - mean[best] <= se[k]),
        "lowest_mean": best,
        "most_picked": most_picked(picks),
    }
    return {
        "n_states": chosen[rule],
        "rule": rule,
        "by_rule": chosen,
        "picks": picks,
        "counts": {str(k): picks.count(k) for k in sorted(set(picks))},
        "val_bic": {str(k): bics[k] for k in ks},  # per resample, in resample order
        "median_above_best": {str(k): median[k] for k in ks},
        "mean_val_bic": {str(k): mean[k] for k in ks},
        "se_gap": {str(k): se[k] for k in ks},
    }


def most_picked(picks: list[int]) -> int:
    """The most frequent K among ``picks``; ties go to the smaller K."""
    return min(set(picks), key=lambda k: (-picks.count(k), k))


def edge_flags(candidates: list[int], selected: int) -> dict[str, bool]:
    """``at_largest_candidate``: K is the largest candidate; ``at_smallest_candidate``: K
    is the smallest candidate and that is above 1 (K = 1 cannot be undercut)."""
    return {
        "at_largest_candidate": selected == max(candidates),
        "at_smallest_candidate": selected == min(candidates) and selected > 1,
    }


def restart_picks(rows: list[dict[str, Any]], key: str = "restart_val_bic") -> list[int | None]:
    """Per replicate index r (restart, or fold with ``key="fold_val_bic"``): the K whose
    r-th entry of ``key`` is lowest (ties to the smaller K); None where no K has a finite
    one. Empty when the rows carry no such lists."""
    n = max((len(row.get(key) or []) for row in rows), default=0)
    picks = []
    for r in range(n):
        replicate = [
            {"n_states": row["n_states"], "bic": row[key][r]}
            for row in rows
            if r < len(row.get(key) or []) and row[key][r] is not None
        ]
        picks.append(lowest(replicate, "bic"))
    return picks


def agreement(picks: list[int | None], selected: int) -> dict[str, Any] | None:
    """``{"picks", "agree", "n", "share"}``: how many replicates pick ``selected``; None
    without replicates."""
    if not picks:
        return None
    agree = sum(pick == selected for pick in picks)
    return {"picks": picks, "agree": agree, "n": len(picks), "share": agree / len(picks)}


def selection_notes(selection: dict[str, Any]) -> list[str]:
    """Plain-language notes on the choice of K (summary.md, the figure, the job's log)."""
    k, notes = selection["n_states"], []
    n_candidates = len(selection["scores"])
    if selection.get("at_largest_candidate"):
        if n_candidates == 1:
            notes.append(f"K = {k} is the only candidate: BIC was not compared; widen hmm.states")
        else:
            notes.append(
                f"K = {k} is the largest candidate and BIC is still falling: widen hmm.states"
            )
    if selection.get("at_smallest_candidate") and n_candidates > 1:
        notes.append(
            f"K = {k} is the smallest candidate and BIC is still falling towards fewer "
            "states: widen hmm.states"
        )
    stability = selection.get("stability") or {}
    folds, restarts = stability.get("folds"), stability.get("restarts")
    resamples = stability.get("resamples")
    if resamples:  # they redraw the split and the restarts: the notes below are theirs
        if resamples["share"] <= LOW_SHARE:
            counts = selection["resamples"]["counts"]
            picked = ", ".join(f"K={key} by {n}" for key, n in counts.items())
            notes.append(
                f"K = {k} is picked by only {resamples['agree']}/{resamples['n']} resamples "
                f"({picked}): one split of the runs does not settle K, the "
                f"{selection['resamples']['rule']} rule over all {resamples['n']} picks it; "
                "read the states with low support with care"
            )
        return notes
    if selection.get("held_out") == IN_SAMPLE:
        notes.append(
            f"K = {k} is chosen by the in-sample BIC: the run is too short for held-out "
            "blocks of checkpoints (hmm.folds, docs/state_count.md); in-sample BIC favours "
            "more states"
        )
    if folds and folds["share"] <= LOW_SHARE and selection.get("selection") == SELECTION:
        notes.append(
            f"K = {k} is unstable over time: only {folds['agree']}/{folds['n']} folds of "
            f"blocks of checkpoints alone pick it (picks {folds['picks']}); log more "
            "checkpoints before reading K"
        )
    elif folds and folds["share"] <= LOW_SHARE:
        notes.append(
            f"K = {k} is unstable across runs: only {folds['agree']}/{folds['n']} folds alone "
            f"pick it (picks {folds['picks']}); add runs before reading K"
        )
    if restarts and restarts["share"] <= LOW_SHARE:
        notes.append(
            f"K = {k} rests on the best restarts: only {restarts['agree']}/{restarts['n']} "
            f"restarts alone pick it (picks {restarts['picks']}); raise hmm.restarts"
        )
    return notes


def stability_text(selection: dict[str, Any]) -> str:
    """``"4/5 folds, 5/5 restarts"``: the replicates agreeing with K, or "–"."""
    stability = selection.get("stability") or {}
    parts = [
        f"{stability[what]['agree']}/{stability[what]['n']} {what}"
        for what in ("resamples", "folds", "restarts")
        if stability.get(what)
    ]
    return ", ".join(parts) or "–"


def warn_about(selection: dict[str, Any]) -> None:
    for note in selection_notes(selection):
        log.warning("%s", note)


def guard_summary(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the covariance guard changed any fit: ``{"rule", "acted", "fits"}``, with
    one entry per K where it acted in some restart (``n_states``, ``kept_iterations``,
    ``restarts_acted``, ``per_restart``: iterations per restart, null if it failed)."""
    guarded = [fit for fit in fits if "guard" in fit]
    rules = sorted({fit["guard"]["rule"] for fit in guarded})
    acted = [
        {
            "n_states": int(fit["n_states"]),
            "kept_iterations": fit["guard"]["iterations"],
            "restarts_acted": sum(bool(n) for n in fit["guard"]["per_restart"]),
            "per_restart": fit["guard"]["per_restart"],
        }
        for fit in sorted(guarded, key=lambda f: f["n_states"])
        if any(fit["guard"]["per_restart"])
    ]
    summary = {"rule": ", ".join(rules) or None, "acted": bool(acted), "fits": acted}
    folded = sorted((f for f in fits if "cv" in f), key=lambda f: f["n_states"])
    if folded:  # kfold: the fold fits' scores chose K, so their guard counts too
        summary["folds"] = [
            {
                "n_states": int(fit["n_states"]),
                "fold": fold,
                "restarts_acted": sum(bool(n) for n in per_restart),
                "per_restart": per_restart,
            }
            for fit in folded
            for fold, per_restart in enumerate(fit["cv"].get("fold_guard_iterations", []))
            if any(per_restart)
        ]
        summary["acted"] = bool(acted or summary["folds"])
    return summary


def guard_note(selection: dict[str, Any]) -> str | None:
    """One line for the figure naming every K the guard acted in, or None."""
    guard = selection.get("covariance_guard") or {}
    if not guard.get("acted"):
        return None
    parts = [
        f"K={fit['n_states']}: {fit['restarts_acted']}/{len(fit['per_restart'])} restarts"
        f" (kept model: {fit['kept_iterations']} iterations)"
        for fit in guard["fits"]
    ]
    parts += [
        f"K={fit['n_states']} fold {fit['fold']}: {fit['restarts_acted']}/"
        f"{len(fit['per_restart'])} restarts"
        for fit in guard.get("folds", [])
    ]
    return f"covariance guard ({guard['rule']}) acted, scores are not plain hmmlearn: " + "; ".join(
        parts
    )
