"""Does the live map predict convergence? k-fold over runs (rule evaluate_live_map).

For each fold the map is refit on the other runs (docs/live.md): global z-scores from
them, the HMM at the setting's selected K (``fit_all_runs``: restarts, kept by training
log-likelihood, states numbered by first reach), their Viterbi paths, the detour
regression's kinds and their live.json (``trainmap.live.build``). K itself is the
full map's choice and is not chosen again per fold: selection is the expensive part and
the question here is how well a map of that size predicts. Each held-out run is then
played through ``LiveRun`` up to ``cut`` = f x the training runs' median convergence
step, for every fraction f, and its prediction compared with the baselines
(``trainmap.live.baselines``) given the same rows.

Scored on the held-out runs not converged at ``cut`` (a converged run is known): the
absolute error in steps over those that converged later (a censored run has no true
step), the map's interval coverage, and the AUROC with which each method's predicted
step (and the map's ``p_detour``) picks out the slowest quarter of all runs (censored
runs the slowest).
"""

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from trainmap.config.settings import Setting
from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import model_from_json
from trainmap.hmm.options import fit_options
from trainmap.hmm.selected import fit_all_runs
from trainmap.hmm.sequences import fold_runs, prepare_sequences
from trainmap.io.files import plain
from trainmap.live import baselines
from trainmap.live.build import live_map
from trainmap.live.livemap import LiveMap
from trainmap.maps.convergence import direction
from trainmap.maps.detours import analyze_detours, convergence_times

METHODS = ("map", "mean_remaining", "curve_extrapolation", "slope_regression")
FOLDS = 5
SLOWEST = 0.25  # the share of runs counted as slow for the AUROC


def evaluate_live(
    trajectories: pd.DataFrame, setting: Setting, n_states: int, fractions: list[float]
) -> dict[str, Any]:
    """evaluation.json: per fraction and method the errors and AUROCs, and every
    held-out prediction (``predictions``)."""
    rule = setting.convergence
    times = convergence_times(trajectories, rule["column"], rule["threshold"], direction(rule))
    times = times[times["measured"]]
    runs = sorted(times.index.tolist())
    folds = fold_runs(runs, min(FOLDS, len(runs)), setting.hmm["seed"])
    slow = slowest(times)
    rows = []
    for fold, held_out in enumerate(folds):
        training = trajectories[~trajectories["seed"].isin(held_out)]
        fold_map = refit_map(training, setting, n_states)
        train_times = times.loc[~times.index.isin(held_out)]
        for run in held_out:
            run_rows = trajectories[trajectories["seed"] == run].sort_values("step")
            for fraction in fractions:
                row = predict_at(fold_map, train_times, run_rows, fraction, rule, training)
                truth = times.loc[run]
                rows.append({
                    "fold": fold, "seed": plain(run), "fraction": fraction, **row,
                    "convergence_step": int(truth["convergence_step"]),
                    "censored": bool(truth["censored"]), "slow": bool(slow.loc[run]),
                })  # fmt: skip
    table = pd.DataFrame(rows)
    return {
        "setting": setting.name,
        "n_states": n_states,
        "folds": [[plain(r) for r in fold] for fold in folds],
        "fractions": list(fractions),
        "methods": list(METHODS),
        "slowest_share": SLOWEST,
        "scores": [score(table, f) for f in fractions],
        "predictions": table.to_dict("records"),
    }


def refit_map(training: pd.DataFrame, setting: Setting, n_states: int) -> LiveMap:
    """The live map of ``training``'s runs alone, at ``n_states`` states."""
    hmm = setting.hmm
    prepared = prepare_sequences(
        training, setting.features, max_checkpoints=hmm["max_checkpoints"], normalize="global",
        val_fraction=hmm["val_fraction"], seed=hmm["seed"], features_given=setting.features_given,
    )  # fmt: skip
    table, features = prepared.table, prepared.features
    model = fit_all_runs(table, features, n_states, **fit_options(hmm))
    states = decode_states(model_from_json(model), table, features)
    detours, _, runs = analyze_detours(states, training, n_states, setting.convergence,
                                       setting.alpha)  # fmt: skip
    kinds = {"states": [{"id": k, "kind": kind} for k, kind in enumerate(detours["kind"])]}
    return LiveMap(live_map(setting.name, model, prepared.report(), kinds, states, runs,
                            setting.convergence))  # fmt: skip


def predict_at(live, train_times, run_rows, fraction, rule, training) -> dict[str, Any]:
    """Every method's prediction for one held-out run seen up to fraction x the training
    runs' median convergence step; ``converged`` runs are not predicted."""
    ends = train_times["convergence_step"].to_numpy(dtype=float)
    cut = float(fraction * np.median(ends))
    horizon = float(training["step"].max())
    seen = run_rows[run_rows["step"] <= cut]
    out: dict[str, Any] = {"cut": cut, "rows_seen": len(seen)}
    if not len(seen):
        return {**out, "converged": False, **dict.fromkeys(METHODS)}
    run = live.run()
    for record in seen.to_dict("records"):
        prediction = run.update(int(record["step"]), record)
    if prediction.converged_at is not None:
        return {**out, "converged": True, **dict.fromkeys(METHODS)}
    steps = seen["step"].to_numpy()
    values = seen[rule["column"]].to_numpy(dtype=float)
    median = prediction.predicted_convergence_step
    train_x, train_ends = training_features(training, train_times, cut, rule["column"])
    return {
        **out,
        "converged": False,
        "map": horizon if median is None else median,
        "map_low": prediction.low,
        "map_high": prediction.high,
        "p_detour": prediction.p_detour,
        "state": prediction.state,
        "mean_remaining": baselines.mean_remaining(ends, cut, horizon),
        "curve_extrapolation": baselines.curve_extrapolation(steps, values, rule, horizon),
        "slope_regression": baselines.slope_regression(
            train_x, train_ends, np.array(baselines.run_features(steps, values, cut)), horizon
        ),
    }


def training_features(training, train_times, cut, column):
    """(value, slope) at ``cut`` of every training run not converged by then, and their
    convergence steps."""
    later = train_times[train_times["convergence_step"] > cut]
    x = []
    for seed in later.index:
        run = training[training["seed"] == seed]
        x.append(baselines.run_features(run["step"].to_numpy(), run[column].to_numpy(float), cut))
    return np.array(x).reshape(-1, 2), later["convergence_step"].to_numpy(dtype=float)


def slowest(times: pd.DataFrame) -> pd.Series:
    """True for the slowest ``SLOWEST`` share of runs (censored ones slowest of all)."""
    order = times.sort_values(["censored", "convergence_step"], ascending=False)
    n = max(int(round(SLOWEST * len(order))), 1)
    return pd.Series(times.index.isin(order.index[:n]), index=times.index)


def score(table: pd.DataFrame, fraction: float) -> dict[str, Any]:
    """One fraction's scores over the held-out runs still training at the cut."""
    rows = table[(table["fraction"] == fraction) & ~table["converged"]]
    rows = rows[rows["map"].notna()]
    converged = rows[~rows["censored"]]
    out: dict[str, Any] = {
        "fraction": fraction,
        "n_runs": int(len(table[table["fraction"] == fraction])),
        "n_predicted": int(len(rows)),
        "n_converged_before_cut": int(table.loc[table["fraction"] == fraction, "converged"].sum()),
        "n_censored": int(rows["censored"].sum()),
        "mean_cut": float(table.loc[table["fraction"] == fraction, "cut"].mean()),
    }
    truth = converged["convergence_step"].to_numpy(dtype=float)
    for method in METHODS:
        error = np.abs(converged[method].to_numpy(dtype=float) - truth)
        out[method] = {
            "mae": _mean(error),
            "median_ae": float(np.median(error)) if error.size else None,
            "auroc_slowest": _auroc(rows["slow"], rows[method]),
        }
    out["map"]["auroc_slowest_p_detour"] = _auroc(rows["slow"], rows["p_detour"])
    low = converged["map_low"].astype(float).fillna(-np.inf).to_numpy()
    high = converged["map_high"].astype(float).fillna(np.inf).to_numpy()
    out["map"]["interval_coverage"] = _mean((low <= truth) & (truth <= high))
    return out


def _auroc(labels: pd.Series, scores: pd.Series) -> float | None:
    labels = labels.to_numpy(dtype=bool)
    if labels.all() or not labels.any():
        return None  # one class only: no ranking to score
    return float(roc_auc_score(labels, scores.to_numpy(dtype=float)))


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if np.size(values) else None
