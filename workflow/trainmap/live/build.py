"""``live.json``: what a fitted map needs to place a run online (rule write_live_map).

Plain JSON, read by ``trainmap.live.livemap.LiveMap`` (docs/live.md):

- ``features`` and ``scale`` (the global means and SDs the map's z-scores used, in the
  features' own units; SD 0 marks a feature constant over the fit runs, z = 0);
- ``model``: the map's kept HMM (selected.json's parameters);
- ``kinds``: each state's kind (``detour``, ``dead_end`` or ``""``) and, with
  ``stability.resamples``, its supports;
- ``runs``: every decoded fit run's path (the step at which each stretch in one state
  starts, and the state) with its convergence step and whether it was censored: the
  per-state remaining-time tables of any step are taken from them (``LiveMap.outlook``);
- ``convergence``: the setting's rule, so a live run that passes it is converged;
- ``checkpoint_every``: the fit runs' median step between checkpoints (the HMM's
  transitions are per checkpoint, so a run logged at another interval is warned about).

A map z-scored per run (``hmm.normalize: per_run``) cannot be used online, as a run's
z-scores need the whole run: its live.json holds only ``refused`` with that reason, which
every reader reports.
"""

from typing import Any

import numpy as np
import pandas as pd

from trainmap.io.files import plain

FORMAT = 1
# What rule evaluate_live_map passes of a setting (plain values; the script makes a
# trainmap.config.settings.Setting of them).
LIVE_SETTING_FIELDS = ("name", "source", "convergence", "hmm", "alpha", "stability",
                       "features", "features_given", "live")  # fmt: skip
PARAMETERS = ("n_states", "covariance", "startprob", "transmat", "means", "covars")
PER_RUN_REFUSAL = (
    "the map was fitted with hmm.normalize: per_run: each run's z-scores use the mean and "
    "SD of the whole run, which a run still training does not have yet. Refit it with "
    "hmm.normalize: global (the default) to use it live"
)


def live_map(
    setting: str,
    model: dict[str, Any],
    prepare: dict[str, Any],
    training_map: dict[str, Any],
    states: pd.DataFrame,
    runs: pd.DataFrame,
    convergence: dict[str, Any],
) -> dict[str, Any]:
    """live.json's content.

    ``model``: selected.json; ``prepare``: prepare.json (``normalize``, ``features``,
    ``scale``); ``training_map``: map.json; ``states``: states.parquet (``seed, step,
    state``); ``runs``: convergence.parquet (``seed, convergence_step, censored,
    measured``; empty without a convergence rule); ``convergence``: the setting's rule
    (``{}`` for a checkpoint series without one: no predictions, kinds all empty).
    """
    head = {"format": FORMAT, "setting": setting}
    if prepare["normalize"] != "global":
        return {**head, "refused": PER_RUN_REFUSAL}
    features = list(model["features"])
    scale = prepare["scale"]
    return {
        **head,
        "normalize": "global",
        "features": features,
        "scale": {
            "mean": [scale["mean"][f] for f in features],
            "sd": [scale["sd"][f] for f in features],
        },
        "model": {key: model[key] for key in PARAMETERS},
        "states": [_state(state) for state in training_map["states"]],
        "convergence": dict(convergence),
        "checkpoint_every": _checkpoint_every(states),
        "runs": fit_runs(states, runs) if convergence else [],
    }


def _state(state: dict[str, Any]) -> dict[str, Any]:
    supports = {k: v for k, v in state.items() if k.endswith("support")}
    return {"id": int(state["id"]), "kind": state.get("kind") or "", **supports}


def _checkpoint_every(states: pd.DataFrame) -> float:
    gaps = states.sort_values(["seed", "step"]).groupby("seed")["step"].diff().dropna()
    return float(gaps.median()) if len(gaps) else 0.0


def fit_runs(states: pd.DataFrame, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per decoded run with a measured convergence column: ``seed``, ``starts`` (the
    steps at which its path enters a state), ``states`` (that state), ``convergence_step``
    (its last step when ``censored``) and ``censored``. Runs sorted by seed."""
    times = runs.set_index("seed")
    out = []
    for seed, path in states.sort_values(["seed", "step"]).groupby("seed", sort=True):
        if seed not in times.index or not bool(times.at[seed, "measured"]):
            continue
        labels = path["state"].to_numpy()
        enters = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        out.append(
            {
                "seed": plain(seed),
                "starts": path["step"].to_numpy()[enters].astype(int).tolist(),
                "states": labels[enters].astype(int).tolist(),
                "convergence_step": int(times.at[seed, "convergence_step"]),
                "censored": bool(times.at[seed, "censored"]),
            }
        )
    return out
