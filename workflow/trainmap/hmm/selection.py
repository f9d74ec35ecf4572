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
"""

from typing import Any

import numpy as np

ROW_KEYS = ("train_loglik", "val_loglik", "val_aic", "val_bic")
MEAN_KEYS = ("val_loglik", "val_aic", "val_bic")


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


def select_state_count(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """``selection.json``: ``{"n_states", "criterion": "bic", "scores": [...]}`` and the
    restart-mean choice ``mean_n_states`` for comparison."""
    if not fits:
        raise ValueError("no fits to select from")
    rows = score_table(fits)
    selected = lowest(rows, "val_bic")
    if selected is None:
        raise ValueError("no state count has a finite validation BIC")
    return {
        "n_states": selected,
        "criterion": "bic",
        "rule": "lowest validation BIC of the kept model; ties go to the smaller K",
        "mean_n_states": lowest(rows, "mean_val_bic"),
        "covariance_guard": guard_summary(fits),
        "scores": rows,
    }


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
    return {"rule": ", ".join(rules) or None, "acted": bool(acted), "fits": acted}


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
    return f"covariance guard ({guard['rule']}) acted, scores are not plain hmmlearn: " + "; ".join(
        parts
    )
