"""The Recorder's guards: "not logged yet" is no divergence, one live writer per seed
folder, a restart that drops logged steps says so."""

import json
import logging
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from torch import nn

from trainmap.errors import RecordError
from trainmap.io.divergence import divergence, turned_non_finite
from trainmap.record import Recorder
from trainmap.record.lock import LOCK_FILE

NAN = float("nan")


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def read(tmp_path, seed=0) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / f"seed{seed}" / "metrics.parquet")


def test_a_nan_placeholder_before_the_first_loss_is_not_divergence(tmp_path, caplog):
    """train_loss=nan at step 0 (no batch yet) used to mark every row diverged."""
    with (
        caplog.at_level(logging.INFO, "trainmap"),
        Recorder(tmp_path, seed=0, model=small_model()) as rec,
    ):
        rec.log(0, train_loss=NAN, eval_loss=NAN)
        rec.log(10, train_loss=NAN, eval_loss=2.0)
        rec.log(20, train_loss=1.0, eval_loss=1.5)
    assert not read(tmp_path)["diverged"].any()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert (
        sum("train_loss is non-finite at step 0 before any finite value" in m for m in infos) == 1
    )
    assert any("eval_loss is non-finite at step 0 before any finite value" in m for m in infos)


def test_the_rule_on_a_column():
    assert turned_non_finite(np.array([NAN, NAN, 1.0, 2.0])) is None
    assert turned_non_finite(np.array([NAN, 1.0, np.inf, NAN])) == 2
    assert turned_non_finite(np.array([1.0, 2.0])) is None
    run = pd.DataFrame({"step": [0, 5, 10], "train_loss": [NAN, 1.0, NAN], "acc": [NAN] * 3})
    found = divergence(run)
    assert (found.columns, found.step) == (("train_loss",), 10)
    assert found.text() == "train_loss turned non-finite at step 10 (finite before)"
    assert divergence(run, flagged_from=5) is None


def test_a_resumed_run_keeps_its_divergence_state(tmp_path):
    with Recorder(tmp_path, seed=0, model=small_model()) as rec:
        rec.log(0, train_loss=NAN)
        rec.log(1, train_loss=1.0)
    with Recorder(tmp_path, seed=0, model=small_model()) as rec:  # resumed after step 1
        rec.log(2, train_loss=NAN)  # train_loss was finite before the restart: diverged
    assert read(tmp_path)["diverged"].tolist() == [False, False, True]


def test_a_second_live_writer_of_the_same_seed_is_refused(tmp_path):
    """Another process holds the lock: its pid and host are named."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "seed3"
        folder.mkdir()
        record = {"pid": holder.pid, "host": socket.gethostname(), "token": "x", "since": "t0"}
        (folder / LOCK_FILE).write_text(json.dumps(record))
        with pytest.raises(
            RecordError,
            match=rf"seed3: another Recorder \(pid {holder.pid} on this host .*, since t0\) "
            "records this seed; two writers would overwrite each other's rows",
        ):
            Recorder(tmp_path, seed=3, model=small_model())
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid  # untouched
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and taken over, with a warning.
    with Recorder(tmp_path, seed=3, model=small_model()) as rec:
        rec.log(0)
    assert not (tmp_path / "seed3" / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_refused_with_the_way_out(tmp_path):
    folder = tmp_path / "seed0"
    folder.mkdir()
    record = {"pid": 1, "host": "node-17", "token": "x", "since": "t0"}
    (folder / LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(RecordError, match=r"pid 1 on host node-17.*if that process is gone, "
                       r"delete .*seed0/recorder\.lock"):  # fmt: skip
        Recorder(tmp_path, seed=0, model=small_model())


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    folder = tmp_path / "seed0"
    folder.mkdir()
    pid = int(gone.stdout)
    record = {"pid": pid, "host": socket.gethostname(), "token": "x", "since": "t0"}
    (folder / LOCK_FILE).write_text(json.dumps(record))
    with (
        caplog.at_level(logging.WARNING, "trainmap"),
        Recorder(tmp_path, seed=0, model=small_model()) as rec,
    ):
        rec.log(0)
    assert f"stale lock of pid {pid} (no longer running, since t0) taken over" in caplog.text


def test_an_unclosed_recorder_of_this_process_is_taken_over_and_stops(tmp_path, caplog):
    """A notebook cell run twice: the new Recorder takes over; the old one stops writing."""
    old = Recorder(tmp_path, seed=0, model=small_model(), flush_every=0)
    old.log(0)
    with caplog.at_level(logging.WARNING, "trainmap"):
        new = Recorder(tmp_path, seed=0, model=small_model(), flush_every=0)
    assert "this process already has a Recorder for this seed" in caplog.text
    new.log(0)
    with pytest.raises(RecordError, match=r"seed0: this Recorder's lock was taken by pid "):
        old.log(1)
    new.log(1)
    new.close()
    assert read(tmp_path)["step"].tolist() == [0, 1]
    assert not (tmp_path / "seed0" / LOCK_FILE).exists()
    assert os.getpid()  # the lock named this process


def test_a_restart_that_drops_logged_steps_warns(tmp_path, caplog):
    with Recorder(tmp_path, seed=0, model=small_model()) as rec:
        for step in (0, 10, 20, 30):
            rec.log(step, train_loss=1.0)
    with (
        caplog.at_level(logging.WARNING, "trainmap"),
        Recorder(tmp_path, seed=0, model=small_model()) as rec,
    ):
        rec.log(0, train_loss=2.0)
    assert read(tmp_path)["step"].tolist() == [0]
    assert "this run starts at step 0, before 3 logged row(s) of steps 10..30: the rows " in (
        caplog.text
    )
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, "trainmap"),
        Recorder(tmp_path, seed=0, model=small_model()) as rec,
    ):
        rec.log(0, train_loss=3.0)  # the same step again (an evaluation after training)
        rec.log(10, train_loss=3.0)
    assert "logged row(s)" not in caplog.text  # nothing beyond the first step was dropped


def test_a_model_without_biases_is_said_once_and_never_diverged(tmp_path, caplog):
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 2, bias=False))
    with caplog.at_level(logging.INFO, "trainmap"), Recorder(tmp_path, seed=0, model=model) as rec:
        rec.log(0, train_loss=1.0)
        rec.log(1, train_loss=0.5)
    table = read(tmp_path)
    assert table[["mean_b", "median_b", "var_b"]].isna().all().all()
    assert not table["diverged"].any()
    said = [r.getMessage() for r in caplog.records if "no biases" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith(
        "the model has no biases: mean_b, median_b, var_b are NaN in every row (not "
        "divergence; the workflow's default features leave them out)"
    )
