"""Choosing K by cross-validation over runs (``hmm.selection: kfold``).

The runs are dealt into folds (trainmap.hmm.sequences.fold_runs, seeded from the sorted run
list); every run is validated exactly once. For each candidate K and fold, the restarts
are fit on the other folds' runs and scored on the fold's runs, exactly as one split is
(trainmap.hmm.fit.fit_state_count: the kept model of a fold is its restart with the best
validation log-likelihood). One Snakemake job per (K, fold).

**Decision: summed, not averaged.** K is the lowest validation BIC summed over folds,
each fold's BIC being its kept model's (``-2 logL_val + p ln n_fold``). The sum is the
BIC of every held-out row once; the average is the sum over the number of folds, so both
pick the same K: the sum keeps the scale of the split's BIC over all runs.

**Decision: the kept model is refit on all runs.** For the chosen K (and, so that every
``k<K>.json`` exists as under ``split``, for every K) the restarts are fit on all runs and
the one with the best training log-likelihood is kept: with nothing held out, the EM
objective is the only score left. The map then describes every run with a model that saw
all of them, as the folds' models each missed a fifth; the folds only choose K. (A fold's
model would fit 80% of the runs, and folds' log-likelihoods are on different runs, so
"the best fold" has no fair comparison.)
"""

from typing import Any

import numpy as np
import pandas as pd

from trainmap.hmm.fit import fit_state_count
from trainmap.hmm.selected import VAL_SCORES, fit_all_runs
from trainmap.hmm.sequences import observations
from trainmap.seeding import derive_seed


def fold_seed(seed: int, fold: int) -> int:
    """The seed of one fold's restarts (each fold's EM draws its own initialisations)."""
    return derive_seed(seed, "fold", fold)


def fold_observations(table: pd.DataFrame, features: list[str], fold: int):
    """``(fit, val)`` as ``(X, lengths)`` pairs: the other folds' runs and this fold's."""
    if "fold" not in table:
        raise ValueError("the sequences have no `fold` column: prepare them with folds")
    if fold not in set(table["fold"]):
        raise ValueError(
            f"fold {fold} is not among the sequences' folds {sorted(set(table['fold']))}"
        )
    held = (table["fold"] == fold).to_numpy()
    return observations(table[~held], features), observations(table[held], features)


def fit_fold(
    table: pd.DataFrame, features: list[str], n_states: int, fold: int, **options: Any
) -> dict[str, Any]:
    """One (K, fold) job: ``fit_state_count`` on the other folds, scored on this one."""
    fit, val = fold_observations(table, features, fold)
    options = {**options, "seed": fold_seed(options["seed"], fold)}
    return {"fold": fold, **fit_state_count(fit, val, n_states, features, **options)}


def cross_validation(fold_fits: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold validation scores of one K and each restart's scores summed over folds.

    ``fold_fits``: the (K, fold) results, any order. ``restart_val_*``: restart r's score
    summed over folds, null if restart r failed in some fold.
    """
    fits = sorted(fold_fits, key=lambda f: f["fold"])
    if [f["fold"] for f in fits] != list(range(len(fits))):
        raise ValueError(f"folds {[f['fold'] for f in fits]}: expected 0..{len(fits) - 1}")
    if len({f["n_states"] for f in fits}) != 1:
        raise ValueError("fold fits of different state counts")
    cv: dict[str, Any] = {"folds": len(fits)}
    for key in VAL_SCORES:
        cv[f"fold_{key}"] = [f[key] for f in fits]
    cv["fold_n_val_rows"] = [f["n_val_rows"] for f in fits]
    cv["fold_kept_restart"] = [f["kept_restart"] for f in fits]
    cv["fold_guard_iterations"] = [f["guard"]["per_restart"] for f in fits]
    n_restarts = min(len(f["restarts"]) for f in fits)
    for key in VAL_SCORES:
        cv[f"restart_{key}"] = [
            _sum_or_none([f["restarts"][r][key] for f in fits]) for r in range(n_restarts)
        ]
    return cv


def refit_all_runs(
    table: pd.DataFrame,
    features: list[str],
    n_states: int,
    fold_fits: list[dict[str, Any]],
    *,
    selection: str = "kfold",
    **options: Any,
) -> dict[str, Any]:
    """``k<K>.json`` under kfold: the model refit on all runs (best training
    log-likelihood), with the cross-validated scores as its validation scores.

    ``val_loglik/val_aic/val_bic``: summed over folds (each fold's kept model);
    ``mean``/``sd``: over restarts of the restart's summed score; ``cv``: per fold and
    per restart (``cross_validation``). Restarts list only training scores.
    ``selection``: the label written (``time``: the folds are blocks of checkpoints,
    trainmap.hmm.time_selection).
    """
    cv = cross_validation(fold_fits)
    result = fit_all_runs(table, features, n_states, **options)
    for key in VAL_SCORES:
        result[key] = float(np.sum(cv[f"fold_{key}"]))
    for stat, reduce in (("mean", np.mean), ("sd", np.std)):
        result[stat].update({key: _reduce(cv[f"restart_{key}"], reduce) for key in VAL_SCORES})
    result.update(
        selection=selection,
        kept_by="train_loglik (refit on all runs; nothing held out)",
        n_val_rows=int(np.sum(cv["fold_n_val_rows"])),
        cv=cv,
    )
    return result


def _sum_or_none(values: list) -> float | None:
    return None if any(v is None for v in values) else float(np.sum(values))


def _reduce(values: list, reduce) -> float | None:
    finite = [v for v in values if v is not None]
    return float(reduce(finite)) if finite else None
