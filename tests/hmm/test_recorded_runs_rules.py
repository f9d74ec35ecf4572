"""Recorded runs through the HMM stage: divergence is a loss that turned non-finite (named
with its column and step), models without biases are kept, mixed step grids are noted."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from trainmap.hmm.sequences import SequenceError, prepare_sequences
from trainmap.io.biases import BIAS_COLUMNS, bias_free_runs
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.io.tables import find_recorded_runs, load_recorded_runs, load_run_table
from trainmap.record import Recorder

NAN = float("nan")
OPTIONS = {"max_checkpoints": 1000, "normalize": "per_run", "val_fraction": 0.25, "seed": 0}
DEFAULT = list(METRIC_COLUMNS)


def record(directory, seed, *, bias=True, steps=range(0, 200, 10), losses=None):
    """A small model whose weights drift between logs, recorded at ``steps``; losses:
    step -> train_loss (default: a falling finite loss)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8, bias=bias), nn.ReLU(), nn.Linear(8, 3, bias=bias))
    with Recorder(directory, seed=seed, model=model, flush_every=0) as rec:
        for i, step in enumerate(steps):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p) + 0.01)
            loss = (losses or {}).get(step, 1.0 / (1 + i))
            rec.log(step, train_loss=loss, eval_accuracy=min(1.0, 0.1 * i))


def recorded(directory, features=DEFAULT):
    return load_recorded_runs(find_recorded_runs(directory), features, "eval_accuracy")


def test_a_nan_placeholder_at_step_0_leaves_every_run_usable(tmp_path):
    for seed in range(4):
        record(tmp_path, seed, losses={0: NAN})
    prepared = prepare_sequences(recorded(tmp_path), DEFAULT, **OPTIONS)
    assert prepared.excluded == []
    assert sorted(prepared.fit_runs + prepared.val_runs) == [0, 1, 2, 3]


def test_an_excluded_run_is_named_with_its_loss_column_and_first_step(tmp_path, caplog):
    for seed in range(5):
        record(tmp_path, seed, losses={120: NAN, 130: NAN} if seed == 2 else None)
    table = recorded(tmp_path)
    assert table.loc[table["seed"] == 2, "diverged"].tolist() == [False] * 12 + [True] * 8
    assert "train_loss" in table.columns  # the file's losses come along, to be named
    with caplog.at_level(logging.WARNING, "trainmap"):
        prepared = prepare_sequences(table, DEFAULT, **OPTIONS)
    reason = "diverged: train_loss turned non-finite at step 120 (finite before)"
    assert prepared.excluded == [{"seed": 2, "reason": reason}]
    assert f"run 2 excluded from the HMM: {reason}" in caplog.text


def synthetic(seed: int, n: int = 12, **columns) -> pd.DataFrame:
    """One run of ``n`` checkpoints every 10 steps: a rising l1, a falling loss."""
    rows = {"seed": seed, "step": 10 * np.arange(n), "l1": np.arange(n) + 0.5 * seed,
            "train_loss": 1.0 / (1 + np.arange(n)), "diverged": False}  # fmt: skip
    return pd.DataFrame({**rows, **columns})


def test_a_trained_run_flagged_at_every_row_names_its_last_loss():
    """A trained run stops at the checkpoint whose loss turned non-finite; every row is
    flagged."""
    loss = 1.0 / (1 + np.arange(12))
    loss[-1] = np.inf
    runs = [synthetic(0, train_loss=loss, diverged=True), *(synthetic(s) for s in range(1, 6))]
    prepared = prepare_sequences(pd.concat(runs), ["l1"], **OPTIONS)
    assert prepared.excluded == [
        {"seed": 0, "reason": "diverged: train_loss turned non-finite at step 110 (finite before)"}
    ]


def test_a_flag_no_loss_explains_says_so():
    """A file of the old Recorder: a nan placeholder at step 0 flagged every row."""
    loss = 1.0 / (1 + np.arange(12))
    loss[0] = NAN
    runs = [synthetic(s, train_loss=loss, diverged=s == 0) for s in range(6)]
    prepared = prepare_sequences(pd.concat(runs), ["l1"], **OPTIONS)
    (excluded,) = prepared.excluded
    assert excluded["seed"] == 0
    assert excluded["reason"].startswith(
        "diverged: its diverged column marks it from step 0, but no loss column turned "
        "non-finite after a finite value"
    )


def test_bias_free_models_are_kept_and_the_default_features_leave_the_bias_metrics_out(
    tmp_path, caplog
):
    for seed in range(5):
        record(tmp_path, seed, bias=False)
    table = recorded(tmp_path)
    assert table[list(BIAS_COLUMNS)].isna().all().all()
    assert not table["diverged"].any() and bias_free_runs(table) == [0, 1, 2, 3, 4]
    with caplog.at_level(logging.WARNING, "trainmap"):
        prepared = prepare_sequences(table, DEFAULT, features_given=False, **OPTIONS)
    assert prepared.excluded == []
    assert prepared.features == [f for f in DEFAULT if f not in BIAS_COLUMNS]
    report = prepared.report()
    assert report["bias_free_runs"] == [0, 1, 2, 3, 4]
    assert report["left_out_features"] == list(BIAS_COLUMNS)
    assert report["notes"][0] == (
        "5 of 5 run(s) have no biases (0, 1, 2, 3, 4): mean_b, median_b, var_b left out of "
        "the default features"
    )
    said = [r.getMessage() for r in caplog.records if "have no biases" in r.getMessage()]
    assert said == [
        "5 of 5 run(s) (0, 1, 2, 3, 4) have no biases (mean_b, median_b, var_b NaN at every "
        "checkpoint): kept, not diverged; the default features leave mean_b, median_b, "
        "var_b out"
    ]


def test_a_feature_list_naming_the_bias_metrics_of_a_bias_free_model_is_refused(tmp_path):
    for seed in range(4):
        record(tmp_path, seed, bias=False)
    with pytest.raises(
        SequenceError,
        match=r"features: var_b are NaN at every checkpoint of 4 of 4 run\(s\) \(0, 1, 2, 3\): "
        r"their model has no biases, so there are no bias metrics to fit",
    ):
        prepare_sequences(recorded(tmp_path, ["l2", "var_b"]), ["l2", "var_b"], **OPTIONS)


def test_a_table_of_bias_free_runs_is_not_diverged(tmp_path):
    rows = pd.DataFrame({"seed": [0, 0, 1, 1], "step": [0, 1, 0, 1], "acc": 0.5,
                         **{m: [1.0, 2.0, 3.0, 4.0] for m in METRIC_COLUMNS}})  # fmt: skip
    rows[list(BIAS_COLUMNS)] = NAN
    rows.loc[2:, "l1"] = [1.0, np.inf]  # run 1 really diverged
    rows.to_csv(tmp_path / "t.csv", index=False, na_rep="nan")
    table = load_run_table(tmp_path / "t.csv", DEFAULT, "acc")
    assert table.groupby("seed")["diverged"].all().to_dict() == {0: False, 1: True}


def test_features_never_measured_are_named():
    runs = pd.concat(
        pd.DataFrame({"seed": s, "step": [0, 1, 2], "l1": [1.0, 2.0, 3.0], "trace": NAN})
        for s in range(5)
    )
    with pytest.raises(SequenceError, match=r"default features \(the 14 weight metrics\) "
                       r"\['trace'\] are NaN at every checkpoint of every run"):  # fmt: skip
        prepare_sequences(runs, ["l1", "trace"], features_given=False, **OPTIONS)


def test_runs_on_different_step_grids_are_noted(tmp_path, caplog):
    for seed in range(4):
        record(tmp_path, seed, steps=range(0, 400, 20 if seed < 2 else 40))
    with caplog.at_level(logging.WARNING, "trainmap"):
        prepared = prepare_sequences(recorded(tmp_path), DEFAULT, **OPTIONS)
    note = (
        "runs log on different step grids: every 20 steps (seed(s) 0, 1); every 40 steps "
        "(seed(s) 2, 3). The HMM counts checkpoints, so dwell times mix the scales: log "
        "every seed at the same interval"
    )
    assert note in prepared.notes and note in caplog.text


def test_a_run_with_one_row_is_named_with_the_way_out():
    runs = pd.concat(
        pd.DataFrame({"seed": s, "step": [0, 1, 2][: 1 if s == 3 else 3], "l1": 1.0 + s})
        for s in range(5)
    )
    message = (
        r"run\(s\) \[3\] have fewer than 2 checkpoints \(1 in all; rows: 1\).*their seed "
        "folders of a runs directory"
    )
    with pytest.raises(SequenceError, match=message):
        prepare_sequences(runs, ["l1"], **OPTIONS)
