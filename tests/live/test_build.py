"""live.json from the map's files: the global scale reproduces the map's z-scores, a run
replayed through LiveRun gets the filter of the fitted model, per-run maps are refused."""

import numpy as np
import pandas as pd
from live_maps import RULE
from planted import FEATURES, planted_runs

from trainmap.hmm.filtering import filtering_posteriors
from trainmap.hmm.fit import model_from_json, model_to_json
from trainmap.hmm.sequences import prepare_sequences
from trainmap.live.build import fit_runs, live_map
from trainmap.live.livemap import LiveMap
from trainmap.maps.detours import convergence_times


def raw_runs():
    """The planted runs in raw units: every feature scaled and shifted differently."""
    planted = planted_runs()
    raw = planted.trajectories.copy()
    for i, f in enumerate(FEATURES):
        raw[f] = raw[f] * 10.0 ** (i - 2) + 3.0 * i
    return planted, raw


def test_the_global_scale_gives_the_maps_z_scores_and_the_fitted_filter():
    planted, raw = raw_runs()
    prepared = prepare_sequences(
        raw, FEATURES, max_checkpoints=1000, normalize="global", val_fraction=0.2, seed=0
    )
    model = model_to_json(planted.model, FEATURES)
    times = convergence_times(raw, "eval_accuracy", 0.9).assign(measured=True)
    states = prepared.table[["seed", "step"]].assign(state=planted.states["state"].to_numpy())
    data = live_map(
        "p",
        model,
        prepared.report(),
        {"states": [{"id": k, "kind": ""} for k in range(3)]},
        states,
        times.rename_axis("seed").reset_index(),
        RULE,
    )
    live = LiveMap(data)
    z = live.zscores(raw[FEATURES].to_numpy())
    np.testing.assert_allclose(z, prepared.table[FEATURES].to_numpy(), rtol=0, atol=1e-12)
    seed = 5
    rows = raw[raw["seed"] == seed]
    run = live.run(seed)
    ours = np.array([run.update(r["step"], r).probabilities for r in rows.to_dict("records")])
    table = prepared.table[prepared.table["seed"] == seed]
    oracle = filtering_posteriors(model_from_json(model), table[FEATURES].to_numpy())
    np.testing.assert_allclose(ours, oracle, atol=1e-9)


def test_a_constant_feature_is_zero_online_as_in_the_map():
    _, raw = raw_runs()
    raw["spectral"] = 7.25
    prepared = prepare_sequences(
        raw, FEATURES, max_checkpoints=1000, normalize="global", val_fraction=0.2, seed=0
    )
    assert prepared.report()["scale"]["sd"]["spectral"] == 0.0
    assert prepared.report()["scale"]["mean"]["spectral"] == 7.25


def test_a_per_run_map_is_refused_with_the_reason():
    data = live_map("p", {}, {"normalize": "per_run"}, {}, pd.DataFrame(), pd.DataFrame(), RULE)
    assert set(data) == {"format", "setting", "refused"}
    assert "per_run" in data["refused"] and "whole run" in data["refused"]


def test_fit_runs_are_run_length_paths_with_their_convergence():
    states = pd.DataFrame(
        {
            "seed": [1] * 5 + [2] * 3,
            "step": [0, 10, 20, 30, 40, 0, 10, 20],
            "state": [0, 0, 2, 2, 1, 0, 1, 1],
        }
    )
    runs = pd.DataFrame(
        {
            "seed": [1, 2, 3],
            "convergence_step": [30, 20, 5],
            "censored": [False, True, False],
            "measured": [True, True, True],
        }
    )
    assert fit_runs(states, runs) == [
        {
            "seed": 1,
            "starts": [0, 20, 40],
            "states": [0, 2, 1],
            "convergence_step": 30,
            "censored": False,
        },
        {"seed": 2, "starts": [0, 10], "states": [0, 1], "convergence_step": 20, "censored": True},
    ]
