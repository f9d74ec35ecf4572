"""Recorded runs without traps, end to end: a nan placeholder at step 0, a model without
biases, a loss that converges downward, a run never evaluated and one that diverged,
mapped by the workflow with every left-out run listed."""

import json
import math

import pytest
import torch
import yaml
from conftest import run_workflow
from torch import nn

from trainmap.record import Recorder

NAN = float("nan")


def record(directory, seed: int, *, unmeasured=False, diverge_at=None) -> None:
    """20 checkpoints of a bias-free MLP whose weights drift then settle; eval_loss falls
    below 0.5 around checkpoint 8 + seed."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16, bias=False), nn.ReLU(), nn.Linear(16, 3, bias=False))
    with Recorder(directory, seed=seed, model=model, flush_every=0) as rec:
        for i in range(20):
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.08 if i < 8 + seed else 0.99).add_(0.02 * torch.randn_like(p))
            step = 10 * i
            train = NAN if i == 0 or (diverge_at is not None and step >= diverge_at) else 1 / i
            evaluated = NAN if unmeasured else 2.0 * math.exp(-i / (4 + seed / 2))
            rec.log(step, train_loss=train, eval_loss=evaluated)


@pytest.mark.slow
def test_recorded_runs_with_every_trap_map_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(4):
        record(runs, seed)
    record(runs, 4, unmeasured=True)
    record(runs, 5, diverge_at=150)
    config = {
        "settings": {
            "mine": {
                "source": "runs",
                "runs": "runs",
                "convergence": {"column": "eval_loss", "threshold": 0.5, "direction": "below"},
            }
        },
        "hmm": {"states": [1, 2], "restarts": 1, "n_iter": 8, "covariance": "diag"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_workflow(tmp_path, tmp_path / "config.yaml")
    results = tmp_path / "results" / "mine"
    prepare = json.loads((results / "hmm" / "prepare.json").read_text())
    assert prepare["left_out_features"] == ["mean_b", "median_b", "var_b"]
    assert prepare["bias_free_runs"] == [0, 1, 2, 3, 4, 5]
    assert prepare["excluded"] == [
        {"seed": 5, "reason": "diverged: train_loss turned non-finite at step 150 (finite before)"}
    ]
    regression = json.loads((results / "regression.json").read_text())
    assert regression["unmeasured_runs"] == [4] and regression["n_runs"] == 4
    assert regression["convergence"]["direction"] == "below"
    chart = json.loads((results / "map.json").read_text())
    assert chart["n_runs"] == 5  # run 4 is drawn, run 5 is not
    assert [(e["seed"], e["left_out_of"]) for e in chart["excluded_runs"]] == [
        (4, "regression"),
        (5, "map and regression"),
    ]
    assert chart["notes"][0].startswith("6 of 6 run(s) have no biases")
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "## Runs left out and notes" in summary
    assert "run 5 left out of the map and regression: diverged: train_loss turned" in summary
    assert "run 4 left out of the regression: unmeasured: no finite eval_loss value" in summary
    page = (results / "map.html").read_text()
    assert "Runs left out (2)" in page
