"""A setting's HMM, map and support steps in one process, for benches and tests.

The workflow runs these steps as one Snakemake job each (prepare_sequences, fit_hmm per
K, fit_resample per resample, select_state_count, fit_map_model, decode_states,
fit_detour_regression, compute_support, draw_training_map), each script a thin adapter
over the functions called here in the same order with the same options, so a bench that
redraws ``hmm.seed`` ten times measures exactly what the workflow would report.
"""

from typing import Any

import pandas as pd

from trainmap.config.settings import Setting
from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import fit_state_count, model_from_json
from trainmap.hmm.kfold import fit_fold, refit_all_runs
from trainmap.hmm.options import fit_options, map_options, sequence_options
from trainmap.hmm.resample import fit_resample
from trainmap.hmm.selected import selected_model
from trainmap.hmm.selection import select_state_count
from trainmap.hmm.sequences import feature_columns, observations, prepare_sequences
from trainmap.hmm.split import check_resamples
from trainmap.hmm.time_selection import fit_over_time
from trainmap.maps.detours import analyze_detours
from trainmap.maps.graph import build_map, mark_detours
from trainmap.maps.no_regression import analyze_runs
from trainmap.maps.notes import fit_notes, with_notes
from trainmap.maps.phases import with_phases
from trainmap.maps.support import attach_support, map_support


def map_setting(trajectories: pd.DataFrame, setting: Setting) -> dict[str, Any]:
    """Everything the workflow writes for one setting's HMM stage, as Python objects.

    ``setting``: validated (trainmap.config.settings). Returns ``selection``, ``model``
    (selected.json), ``states``, ``detours``, ``regression``, ``support`` (None without
    resamples), ``map`` (map.json) and ``refits`` (the resamples).
    """
    hmm, stability = setting.hmm, setting.stability
    convergence, alpha = setting.convergence, setting.alpha
    prepared = prepare_sequences(
        trajectories,
        setting.features,
        **sequence_options(hmm),
        features_given=setting.features_given,
    )
    table, features = prepared.table, prepared.features
    options = fit_options(hmm)
    fits = [_fit(table, features, k, hmm, options) for k in sorted(hmm["states"])]
    refits = [
        resample_with_calls(
            table,
            trajectories,
            r,
            hmm,
            stability,
            convergence=convergence,
            alpha=alpha,
            where=f"settings.{setting.name}",
        )
        for r in range(1, stability["resamples"] + 1)
    ]
    selection = select_state_count(fits, refits or None, stability["rule"])
    model = selected_model(
        table, features, selection, fits, refit=hmm["refit"], options=map_options(hmm)
    )
    k = selection["n_states"]
    states = decode_states(model_from_json(model), table, features)
    detours, regression, runs = analyze_runs(states, trajectories, k, convergence, alpha)
    # every decoded run; one without a convergence value is marked unmeasured
    training_map = build_map(
        model_from_json(model), features, table, states, runs.set_index("seed")
    )
    training_map = with_phases(mark_detours(training_map, detours), states)  # one run
    notes = fit_notes(sorted(hmm["states"]), model, table, states)
    training_map = with_notes(training_map, prepared.report(), regression, notes)
    support = None
    if refits:
        support = map_support(states, detours["kind"].tolist(), k, refits)
        training_map = attach_support(training_map, support)
    return {
        "selection": selection,
        "model": model,
        "states": states,
        "detours": detours,
        "regression": regression,
        "support": support,
        "map": training_map,
        "refits": refits,
    }


def _fit(table, features, k, hmm, options) -> dict[str, Any]:
    """k<K>.json: the split's fit, or under kfold the folds' scores and the refit, or
    under time the folds of blocks and the fit on every checkpoint."""
    if hmm["selection"] == "time":
        return fit_over_time(table, features, k, **options)
    if hmm["selection"] == "kfold":
        folds = [fit_fold(table, features, k, f, **options) for f in range(hmm["folds"])]
        return refit_all_runs(table, features, k, folds, **options)
    fit, val = observations(table, features, "fit"), observations(table, features, "val")
    return fit_state_count(fit, val, k, features, **options)


def resample_with_calls(
    table: pd.DataFrame,
    trajectories: pd.DataFrame,
    resample: int,
    hmm: dict[str, Any],
    stability: dict[str, Any],
    *,
    convergence: dict[str, Any],
    alpha: float,
    where: str = "settings",
) -> dict[str, Any]:
    """resample<r>.json: the resample's fits, pick and states (trainmap.hmm.resample) and
    its regression's call of each state (``kinds``; all empty without a convergence
    column, as for a checkpoint series without evals). Raises ConfigError naming
    ``<where>.stability...`` when the runs cannot give the resamples asked for (a table's
    runs are only known here)."""
    check_resamples(table.groupby("seed").size().to_dict(), stability, hmm, where)
    refit = fit_resample(
        table,
        feature_columns(table),
        sorted(hmm["states"]),
        resample,
        method=stability["method"],
        val_fraction=hmm["val_fraction"],
        options=fit_options(hmm),
    )
    kinds = [""] * refit["n_states"]
    if convergence:
        decoded = table[["seed", "step"]].assign(state=refit["states"])
        detours, _, _ = analyze_detours(
            decoded, trajectories, refit["n_states"], convergence, alpha
        )
        kinds = detours["kind"].tolist()
    return {**refit, "kinds": kinds}
