"""Recorder(live=...): the map's state in every row, a line when it changes, on_state, and
bad maps or runs refused at the Recorder or its first log, never after training."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from live_maps import planted_live, write_planted_live
from planted import FEATURES
from torch import nn

from trainmap.errors import LiveMapError, RecordError
from trainmap.live.livemap import LiveMap, Prediction
from trainmap.record import Recorder


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def train_a_little(rec: Recorder, net: nn.Module, steps: range) -> list[dict]:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    rows = []
    for step in steps:
        loss = net(torch.ones(4, 6)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append(rec.log(step, train_loss=loss.item(), eval_accuracy=0.5))
    return rows


def test_every_row_gets_the_live_columns_as_the_map_filters_them(tmp_path, caplog):
    live = write_planted_live(tmp_path / "map")
    net = model()
    seen = []
    with caplog.at_level(logging.INFO, logger="trainmap.record.live"):
        with Recorder(tmp_path / "runs", seed=2, model=net, live=live, on_state=seen.append) as rec:
            rows = train_a_little(rec, net, range(10, 60, 10))
    written = pd.read_parquet(tmp_path / "runs" / "seed2" / "metrics.parquet")
    assert list(written.columns[-3:]) == ["state", "p_detour", "predicted_convergence_step"]
    # the oracle: the same rows through a LiveRun of their own
    run = LiveMap.load(live).run(2)
    for row, shown in zip(rows, seen, strict=True):
        expected = run.update(row["step"], row)
        assert isinstance(shown, Prediction) and shown == expected
        assert row["state"] == expected.state and row["p_detour"] == expected.p_detour
    np.testing.assert_array_equal(written["state"], [p.state for p in seen])
    assert "now in state S" in caplog.text and "seed2" in caplog.text


def test_on_state_returning_true_asks_the_run_to_stop(tmp_path):
    live = write_planted_live(tmp_path / "map")
    net = model()
    with Recorder(
        tmp_path / "runs", seed=0, model=net, live=live, on_state=lambda p: p.step >= 30
    ) as rec:
        train_a_little(rec, net, range(10, 30, 10))
        assert not rec.stop_requested
        train_a_little(rec, net, range(30, 40, 10))
        assert rec.stop_requested and rec.live_state.step == 30


def test_a_resumed_recorder_goes_on_from_the_filter_state_of_its_earlier_rows(tmp_path):
    live = write_planted_live(tmp_path / "map")
    net = model()
    with Recorder(tmp_path / "whole", seed=0, model=net, live=live) as rec:
        whole = train_a_little(rec, net, range(10, 70, 10))
    net = model()
    with Recorder(tmp_path / "parts", seed=0, model=net, live=live) as rec:
        train_a_little(rec, net, range(10, 40, 10))
    with Recorder(tmp_path / "parts", seed=0, model=net, live=live) as rec:
        resumed = train_a_little(rec, net, range(40, 70, 10))
    for a, b in zip(whole[3:], resumed, strict=True):
        assert a["p_detour"] == pytest.approx(b["p_detour"], abs=1e-12)
        assert a["state"] == b["state"]


def test_bad_maps_are_refused_when_the_recorder_is_made(tmp_path):
    with pytest.raises(LiveMapError, match="no live map"):
        Recorder(tmp_path / "runs", seed=0, model=model(), live=tmp_path / "nothing")
    refused = tmp_path / "per_run"
    refused.mkdir()
    (refused / "live.json").write_text(json.dumps({"format": 1, "refused": "per-run z-scores"}))
    with pytest.raises(LiveMapError, match="cannot be used live: per-run z-scores"):
        Recorder(tmp_path / "runs", seed=0, model=model(), live=refused)
    with pytest.raises(RecordError, match="on_state= needs live="):
        Recorder(tmp_path / "runs", seed=0, model=model(), on_state=print)
    with pytest.raises(RecordError, match="between 0 and 1"):
        Recorder(
            tmp_path / "runs",
            seed=0,
            model=model(),
            live=write_planted_live(tmp_path / "map"),
            live_threshold=1.5,
        )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.parquet"))


def test_features_the_run_does_not_log_fail_the_first_log(tmp_path):
    data = planted_live()
    data["features"] = [*FEATURES[:3], "eval_loss"]  # a map of another kind of run
    live = LiveMap(data)
    with Recorder(tmp_path / "runs", seed=0, model=model(), live=live) as rec:
        with pytest.raises(LiveMapError, match="has no eval_loss, feature"):
            rec.log(0, train_loss=1.0)


def test_a_scalar_may_not_take_a_live_column_name(tmp_path):
    with Recorder(tmp_path / "runs", seed=0, model=model(), live=LiveMap(planted_live())) as rec:
        with pytest.raises(RecordError, match="p_detour are columns a live Recorder writes"):
            rec.log(0, p_detour=0.3)
