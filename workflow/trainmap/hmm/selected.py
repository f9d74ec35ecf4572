"""The map's model (``hmm/selected.json``): the selected K fitted on every run.

**Decision** (docs/stability.md): the validation runs choose K and nothing else. Once K
is chosen, the map's model is refit on all runs (fit and validation), each restart from
its own seed, and the restart with the best training log-likelihood is kept: with
nothing held out, EM's objective is the only score left (as ``selection: kfold`` already
did). Measured on the default parity runs (global z-scores, K = 5), the best of 5 such
restarts gives the same decoded paths whatever the seeds (adjusted Rand index 0.996),
where models fit on one split's 32 runs agree with each other at 0.85: a map of all runs
does not depend on which runs happened to validate. ``hmm.refit: false`` (the paper's
protocol) keeps the selected K's model of the configured split instead.
"""

from typing import Any

import pandas as pd

from trainmap.hmm.fit import SCORES, fit_state_count
from trainmap.hmm.sequences import observations
from trainmap.seeding import derive_seed

VAL_SCORES = ("val_loglik", "val_aic", "val_bic")


def fit_all_runs(
    table: pd.DataFrame, features: list[str], n_states: int, **options: Any
) -> dict[str, Any]:
    """``fit_state_count`` on every run of ``table``, kept by training log-likelihood; the
    result has no validation scores (its restarts neither)."""
    data = observations(table, features)
    result = fit_state_count(
        data, data, n_states, features, **{**options, "keep_by": "train_loglik"}
    )
    for entry in [result, *result["restarts"]]:
        for key in VAL_SCORES:
            entry.pop(key, None)
    for stat in ("mean", "sd"):
        result[stat] = {"train_loglik": result[stat]["train_loglik"]}
    result.pop("n_val_rows", None)
    return result


def selected_model(
    table: pd.DataFrame,
    features: list[str],
    selection: dict[str, Any],
    fits: list[dict[str, Any]],
    *,
    refit: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    """``selected.json``: the model of ``selection["n_states"]`` the map decodes with.

    ``fits``: every ``k<K>.json``; ``options``: ``fit_state_count``'s. With ``refit`` the
    model is refit on all runs (restart seeds derived from ``hmm.seed`` and "map"), the
    selected K's split scores kept under ``split_scores``; without, or under
    ``selection: kfold`` or ``time`` (whose k<K>.json is already fit on all runs), it is
    the selected K's k<K>.json. ``fitted_on`` says which.
    """
    k = selection["n_states"]
    (kept,) = [fit for fit in fits if fit["n_states"] == k]
    on_all = kept.get("selection") in ("kfold", "time")
    if not refit or on_all:
        on = "all runs" if on_all else "the configured split's fit runs"
        return {**kept, "fitted_on": on}
    result = fit_all_runs(
        table, features, k, **{**options, "seed": derive_seed(options["seed"], "map")}
    )
    split = {key: kept[key] for key in SCORES if key in kept}
    return {**result, "fitted_on": "all runs", "split_scores": split}
