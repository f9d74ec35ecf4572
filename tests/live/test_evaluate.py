"""The live map's k-fold evaluation on planted runs, and its baselines on curves whose
answer is known."""

import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO
from planted import FEATURES, planted_runs

from trainmap.config.settings import Setting
from trainmap.live import baselines
from trainmap.live.build import LIVE_SETTING_FIELDS
from trainmap.live.evaluate import evaluate_live, slowest
from trainmap.maps.detours import convergence_times

HMM = {
    "max_checkpoints": 1000,
    "val_fraction": 0.2,
    "seed": 0,
    "restarts": 2,
    "n_iter": 30,
    "covariance": "diag",
    "tol": 1e-2,
    "min_covar": 1e-3,
    "covariance_guard": "singular",
    "keep_by": "train_loglik",
    "normalize": "global",
}


def setting() -> Setting:
    return Setting(
        name="planted",
        source="table",
        features_given=True,
        features=FEATURES,
        convergence={"column": "eval_accuracy", "threshold": 0.9},
        hmm=HMM,
        alpha=0.05,
        stability={"resamples": 0},
        live={"fractions": [0.4, 0.7]},
    )


def test_the_map_finds_the_slow_runs_that_the_mean_cannot():
    planted = planted_runs(n_runs=30)
    result = evaluate_live(planted.trajectories, setting(), 3, [0.4, 0.7])
    assert [len(fold) for fold in result["folds"]] == [6] * 5
    late = result["scores"][1]
    assert late["n_predicted"] > 5
    # 0.7 of the way to the median, the detour runs are in the detour: the map tells them
    # apart (ties within each group keep it from 1), the mean of the later runs cannot
    assert late["map"]["auroc_slowest"] > 0.7
    assert late["map"]["auroc_slowest_p_detour"] > 0.75
    assert late["mean_remaining"]["auroc_slowest"] < 0.6
    assert late["map"]["mae"] < 0.75 * late["mean_remaining"]["mae"]
    assert late["map"]["interval_coverage"] >= 0.7
    rows = [r for r in result["predictions"] if r["fraction"] == 0.7 and not r["converged"]]
    assert all(r["map"] > r["cut"] for r in rows)


def test_the_slowest_quarter_puts_censored_runs_first():
    planted = planted_runs(n_runs=8, censor=(3,))
    times = convergence_times(planted.trajectories, "eval_accuracy", 0.9)
    slow = slowest(times)
    assert slow.sum() == 2 and slow.loc[3]
    others = times.drop(index=3)
    assert slow.loc[others["convergence_step"].idxmax()]


def test_curve_extrapolation_finds_a_logistic_crossing():
    steps = np.arange(0, 61, 5.0)
    values = 0.1 + 0.9 / (1 + np.exp(-(steps - 80) / 15))
    rule = {"column": "acc", "threshold": 0.9}
    truth = 80 + 15 * np.log((0.9 - 0.1) / (1.0 - 0.9))
    assert baselines.curve_extrapolation(steps, values, rule, 1000.0) == pytest.approx(
        truth, rel=0.02
    )
    flat = np.full_like(steps, 0.3)
    assert baselines.curve_extrapolation(steps, flat, rule, 1000.0) == 1000.0
    falling = {"column": "loss", "threshold": 0.5, "direction": "below"}
    assert baselines.curve_extrapolation(steps, 2 - values, falling, 1000.0) > 60


def test_slope_regression_recovers_a_linear_rule_and_mean_remaining_averages_the_later():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    ends = 100 + 30 * x[:, 0] - 10 * x[:, 1]
    assert baselines.slope_regression(x, ends, np.array([1.0, 1.0]), 1e6) == pytest.approx(120)
    assert baselines.mean_remaining(np.array([10.0, 20.0, 60.0]), 15, 99.0) == 40.0
    assert baselines.mean_remaining(np.array([10.0]), 15, 99.0) == 99.0
    value, slope = baselines.run_features(np.arange(10.0), 2 * np.arange(10.0), 6.5)
    assert (value, slope) == (12.0, pytest.approx(2.0))


def test_the_rule_script_takes_the_setting_as_plain_params(tmp_path):
    """evaluate_live_map.py gets LIVE_SETTING_FIELDS as plain values (common.smk's
    get_live_setting) and makes the Setting itself: a pickled Setting in params would be
    loaded from whichever trainmap is installed, before the script's own."""
    planted = planted_runs(n_runs=10)
    trajectories, selection = tmp_path / "trajectories.parquet", tmp_path / "selection.json"
    planted.trajectories.to_parquet(trajectories, index=False)
    selection.write_text(json.dumps({"n_states": 3}))
    params = {key: getattr(setting(), key) for key in LIVE_SETTING_FIELDS}
    assert all(type(v).__module__ == "builtins" for v in params.values())
    outputs = SimpleNamespace(evaluation=tmp_path / "e.json", figure=tmp_path / "e.png")
    script = REPO / "workflow" / "scripts" / "evaluate_live_map.py"
    spec = importlib.util.spec_from_file_location("evaluate_live_map_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(
        SimpleNamespace(trajectories=trajectories, selection=selection),
        outputs,
        SimpleNamespace(setting=params, fractions=[0.5]),
        str(tmp_path / "log.txt"),
    )
    assert json.loads(outputs.evaluation.read_text())["setting"] == "planted"
    assert outputs.figure.stat().st_size > 0
