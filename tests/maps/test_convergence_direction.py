"""`convergence: {column, threshold, direction: above | below}`: a loss converges downward."""

import json

import numpy as np
import pandas as pd
import pytest
from planted import THRESHOLD, planted_runs

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.figures.curves_html import curves_page
from trainmap.figures.plots import plot_convergence, plot_trajectories
from trainmap.maps.convergence import passed, rule_text
from trainmap.maps.detours import analyze_detours, convergence_times
from trainmap.maps.graph import build_map

LOSS = {"column": "eval_loss", "threshold": 0.5, "direction": "below"}


def loss_runs() -> pd.DataFrame:
    """Two runs whose loss falls: seed 0 passes 0.5 at step 20, seed 1 never; NaN first."""
    return pd.DataFrame(
        {
            "seed": [0, 0, 0, 0, 1, 1, 1],
            "step": [0, 10, 20, 30, 0, 10, 20],
            "eval_loss": [np.nan, 0.9, 0.4, 0.3, 2.0, 1.0, 0.5],
        }
    )


def test_below_converges_at_the_first_value_under_the_threshold():
    times = convergence_times(loss_runs(), "eval_loss", 0.5, "below")
    assert times["convergence_step"].to_dict() == {0: 20, 1: 20}
    assert times["censored"].to_dict() == {0: False, 1: True}  # 0.5 is not below 0.5
    above = convergence_times(loss_runs(), "eval_loss", 0.5)  # the default: above
    assert above["convergence_step"].to_dict() == {0: 10, 1: 0}


def test_the_rule_in_words_and_nan_never_passes():
    assert rule_text(LOSS) == "first eval_loss < 0.5"
    assert rule_text({"column": "acc", "threshold": 0.9}) == "first acc > 0.9"
    assert passed([np.nan, 0.1, 0.9], LOSS).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="convergence.direction: 'up' is not one of above, below"):
        passed([0.1], {**LOSS, "direction": "up"})


@pytest.mark.parametrize("source", ["train", "table", "runs", "checkpoints"])
def test_every_source_takes_a_direction(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"seed": [0], "step": [1], "loss": [1.0]}).to_csv("evals.csv", index=False)
    entry = {
        "train": {"task": "sparse_parity", "seeds": 40},
        "table": {"table": "t.csv"},
        "runs": {"runs": "r"},
        "checkpoints": {"hub": "x/s{seed}-{step}", "seeds": [0, 1], "steps": [1, 2, 3, 4, 5]},
    }[source]
    column = "eval_loss" if source == "train" else "loss"
    convergence = {"column": column, "threshold": 0.5, "direction": "below"}
    if source == "checkpoints":
        entry["evals"] = "evals.csv"
    config = {"settings": {"s": {"source": source, **entry, "convergence": convergence}}}
    if source == "checkpoints":
        config["settings"]["s"]["model"] = "bert"
    setting = validate_config(config, predict_split=False)["s"]
    assert setting.convergence["direction"] == "below"
    with pytest.raises(ConfigError, match=r"settings\.s\.convergence\.direction: 'down' is not"):
        validate_config(
            {
                "settings": {
                    "s": {
                        **config["settings"]["s"],
                        "convergence": {**convergence, "direction": "down"},
                    }
                }
            },  # fmt: skip
            predict_split=False,
        )


def test_the_regression_and_figures_follow_the_direction():
    """The planted runs with their accuracy turned into a falling error (1 - accuracy):
    `below` at 1 - threshold gives the same convergence times as `above` on accuracy."""
    planted = planted_runs(n_runs=12)
    trajectories = planted.trajectories.assign(error=1.0 - planted.trajectories["eval_accuracy"])
    above = {"column": "eval_accuracy", "threshold": THRESHOLD}
    below = {"column": "error", "threshold": 1.0 - THRESHOLD, "direction": "below"}
    table_a, summary_a, runs_a = analyze_detours(planted.states, trajectories, 3, above, 0.5)
    table_b, summary_b, runs_b = analyze_detours(planted.states, trajectories, 3, below, 0.5)
    assert runs_a["convergence_step"].tolist() == runs_b["convergence_step"].tolist()
    assert summary_a["r2"] == pytest.approx(summary_b["r2"])
    assert summary_b["convergence"]["direction"] == "below"
    fig = plot_convergence(runs_b, table_b, summary_b, "demo")
    assert fig.axes[0].get_xlabel() == "convergence step (first error < 0.1)"
    training_map = build_map(
        planted.model,
        ["l1", "l2", "var_w", "spectral"],
        planted.sequences,
        planted.states,
        runs_b.set_index("seed"),
    )
    fig = plot_trajectories(trajectories, planted.states, ["l1"], below, training_map, "demo")
    assert fig.axes[0].get_title() == "error (converged: first error < 0.1)"
    page = curves_page(trajectories, planted.states, ["l1"], below, 3, "demo")
    payload = page.split('<script id="page-data" type="application/json">', 1)[1]
    data = json.loads(payload.split("</script>", 1)[0])
    assert data["thresholds"] == {"error": {"value": 1.0 - THRESHOLD, "rule": "first error < 0.1"}}
