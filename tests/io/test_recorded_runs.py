"""`source: runs`: the config entry and the reader of runs recorded with trainmap.record."""

import pandas as pd
import pytest

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.io.tables import TableError, find_recorded_runs, load_recorded_runs

CONVERGENCE = {"column": "eval_accuracy", "threshold": 0.9}


def setting(**entry):
    return {"settings": {"mine": {"source": "runs", "convergence": CONVERGENCE, **entry}}}


def test_a_runs_setting_validates():
    mine = validate_config(setting(runs="runs/x", features=["l2", "spectral"]))["mine"]
    assert (mine.source, mine.runs, mine.features) == ("runs", "runs/x", ["l2", "spectral"])
    assert mine.seeds == [] and mine.table is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, r"settings\.mine\.runs: required for source 'runs'"),
        ({"runs": "r", "seeds": 3}, r"seeds \(source 'train' or 'checkpoints'\) does not apply"),
        ({"runs": "r", "table": "t.csv"}, r"table \(source 'table'\) does not apply"),
        ({"runs": "r", "lr": 0.1}, r"lr: a task hyperparameter; it only applies to source 'train'"),
        ({"runs": 3}, r"settings\.mine\.runs: 3 is not of type 'string'"),
    ],
)
def test_bad_runs_settings_are_named(entry, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(setting(**entry))


def test_recorded_probe_losses_take_only_the_components():
    """Recorded runs bring their own probe losses (Recorder.log(..., probe_losses=...))."""
    assert validate_config(setting(runs="r"))["mine"].probe == {}
    assert validate_config(setting(runs="r", probe={}))["mine"].probe == {"components": 10}
    mine = validate_config(setting(runs="r", probe={"components": 3}))["mine"]
    assert mine.probe == {"components": 3}
    with pytest.raises(ConfigError, match=r"mine\.probe\.n: recorded runs bring their own"):
        validate_config(setting(runs="r", probe={"n": 64}))
    trained = {"source": "train", "task": "sparse_parity", "seeds": 40, "convergence": CONVERGENCE}
    with pytest.raises(ConfigError, match=r"p\.probe\.n: required"):
        validate_config({"settings": {"p": {**trained, "probe": {"split": "train"}}}})


def test_a_runs_key_on_a_trained_setting_is_refused():
    config = {"settings": {"p": {"source": "train", "task": "sparse_parity", "seeds": 2,
                                 "runs": "r", "convergence": CONVERGENCE}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"runs \(source 'runs'\) does not apply"):
        validate_config(config)


def write_run(directory, folder_seed, steps=(0, 10, 20), **overrides):
    seed = folder_seed
    rows = {"seed": seed, "step": list(steps), "eval_accuracy": [0.1, 0.5, 0.95][: len(steps)]}
    rows.update({m: [1.0 + seed, 2.0, 3.0][: len(steps)] for m in METRIC_COLUMNS})
    rows["diverged"] = False
    rows.update(overrides)
    path = directory / f"seed{folder_seed}" / "metrics.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_runs_are_found_by_seed_and_read_with_the_table_checks(tmp_path):
    paths = [write_run(tmp_path, seed) for seed in (10, 2, 0)]
    found = find_recorded_runs(tmp_path)
    assert found == [paths[2], paths[1], paths[0]]  # by seed number, not by name
    table = load_recorded_runs(found, ["l1", "l2"], "eval_accuracy")
    assert list(table.columns) == ["seed", "step", "l1", "l2", "eval_accuracy", "diverged"]
    assert list(table["seed"].unique()) == [0, 2, 10]
    assert not table["diverged"].any()


def test_a_run_its_file_marks_diverged_is_diverged(tmp_path):
    write_run(tmp_path, 0, diverged=[False, True, True])
    write_run(tmp_path, 1)
    table = load_recorded_runs(find_recorded_runs(tmp_path), ["l1"], "eval_accuracy")
    assert table.groupby("seed")["diverged"].any().to_dict() == {0: True, 1: False}
    # from the row the file marks on (the Recorder's rule: the step a loss turned non-finite)
    assert table.loc[table["seed"] == 0, "diverged"].tolist() == [False, True, True]


def test_an_empty_runs_directory_is_named(tmp_path):
    with pytest.raises(TableError, match=r"settings\.x\.runs: .*: no seed<seed>/metrics\.parquet"):
        find_recorded_runs(tmp_path, "settings.x.runs")


def test_bad_directories_and_files_are_named(tmp_path):
    with pytest.raises(TableError, match=r"runs: .*missing: no such directory"):
        find_recorded_runs(tmp_path / "missing")
    write_run(tmp_path, 0)
    (tmp_path / "seed_old").mkdir()
    (tmp_path / "seed0" / "metrics.parquet").rename(tmp_path / "seed_old" / "metrics.parquet")
    with pytest.raises(TableError, match=r"seed_old/metrics\.parquet: folder 'seed_old' is not"):
        find_recorded_runs(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": 7}, r"seed3/metrics\.parquet: holds rows of seed 7, but its folder is seed3"),
        ({"step": [0, 10, 10]}, r"seed3/metrics\.parquet: duplicate \(seed, step\) rows"),
        ({"l2": ["a", "b", "c"]}, r"seed3/metrics\.parquet: column 'l2' must be numeric"),
    ],
)
def test_bad_run_files_are_named(tmp_path, overrides, message):
    path = write_run(tmp_path, 3, **overrides)
    with pytest.raises(TableError, match=message):
        load_recorded_runs([path], ["l2"], "eval_accuracy")


def test_a_missing_column_names_the_file(tmp_path):
    path = write_run(tmp_path, 3)
    pd.read_parquet(path).drop(columns=["eval_accuracy"]).to_parquet(path)
    with pytest.raises(TableError, match=r"seed3/metrics\.parquet: missing column 'eval_acc"):
        load_recorded_runs([path], ["l2"], "eval_accuracy")
