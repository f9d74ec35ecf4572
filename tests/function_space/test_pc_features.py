"""Function-space components as HMM features (features: [l2, pc1, pc2])."""

import logging
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PC_FEATURES, REPO, copy_run, planned_jobs, run_workflow

from trainmap.config.settings import load_yaml, validate_config
from trainmap.errors import ConfigError
from trainmap.function_space.features import join_coords, pc_features, pc_number
from trainmap.hmm.sequences import prepare_sequences
from trainmap.io.stale import remove_stale_results

TINY = REPO / "tests" / "configs" / "tiny.yaml"
PROBE_CONFIG = REPO / "tests" / "configs" / "tiny_probe.yaml"


def parity_config(**entry):
    config = load_yaml(TINY)
    config["settings"]["parity"].update(entry)
    return config


def test_pc_names():
    assert [pc_number(f) for f in ("pc1", "pc12", "pc0", "pc01", "pc", "l2", "xpc1")] == [
        1, 12, None, None, None, None, None,
    ]  # fmt: skip
    assert pc_features(["l2", "pc2", "spectral", "pc1"]) == ["pc2", "pc1"]


def test_pc_features_are_accepted_with_a_probe_set():
    config = parity_config(features=["l2", "pc1", "pc2"], probe={"n": 64, "components": 3})
    settings = validate_config(config)
    assert settings["parity"].features == ["l2", "pc1", "pc2"]
    config = parity_config(features=["pc3"], probe={"n": 64, "components": 3})
    assert validate_config(config)["parity"].features == ["pc3"]


def test_pc_features_without_a_probe_set_are_refused():
    config = parity_config(features=["l2", "pc1"])
    with pytest.raises(ConfigError, match=r"settings\.parity\.features: \['pc1'\].*probe") as e:
        validate_config(config)
    assert "settings.parity.probe" in str(e.value)


def test_pc_beyond_the_components_is_refused():
    config = parity_config(features=["pc1", "pc5"], probe={"n": 64, "components": 3})
    with pytest.raises(ConfigError, match=r"settings\.parity\.features: \['pc5'\] exceed") as e:
        validate_config(config)
    assert "settings.parity.probe.components: 3" in str(e.value)
    # the default is 10 components
    config = parity_config(features=["pc10"], probe={"n": 64})
    validate_config(config)
    config = parity_config(features=["pc11"], probe={"n": 64})
    with pytest.raises(ConfigError, match=r"\['pc11'\] exceed the 10 components"):
        validate_config(config)


def test_other_unknown_features_are_still_refused():
    config = parity_config(features=["pc1", "pca"], probe={"n": 64})
    with pytest.raises(ConfigError, match=r"\['pca'\] are not logged by training"):
        validate_config(config)


def test_a_table_column_named_pc1_is_an_ordinary_feature(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("seed,step,pc1,acc\n0,0,1.0,0.1\n")
    config = load_yaml(TINY)
    config["settings"] = {
        "mine": {
            "source": "table",
            "table": str(path),
            "features": ["pc1"],
            "convergence": {"column": "acc", "threshold": 0.9},
        }
    }
    assert validate_config(config)["mine"].features == ["pc1"]


def trajectories_and_coords():
    steps = np.arange(0, 120, 10)  # 12 checkpoints: enough validation rows
    trajectories = pd.DataFrame(
        {
            "seed": np.repeat([0, 1, 2], len(steps)),
            "step": np.tile(steps, 3),
            "l2": np.linspace(1, 2, 3 * len(steps)),
            "diverged": False,
        }
    )
    coords = trajectories[["seed", "step"]].sample(frac=1, random_state=0)  # any order
    coords = coords.assign(pc1=coords["seed"] * 100.0 + coords["step"], pc2=-coords["step"])
    coords = coords.assign(pc3=0.5)
    extra = pd.DataFrame({"seed": [0], "step": [120], "pc1": [9.0], "pc2": [9.0], "pc3": [9.0]})
    return trajectories, pd.concat([coords, extra], ignore_index=True)  # a probe-only row


def test_join_adds_the_named_components_on_seed_and_step():
    trajectories, coords = trajectories_and_coords()
    joined = join_coords(trajectories, coords, ["l2", "pc2", "pc1"])
    assert list(joined.columns) == ["seed", "step", "l2", "diverged", "pc2", "pc1"]
    pd.testing.assert_frame_equal(joined[trajectories.columns], trajectories)
    assert (joined["pc1"] == joined["seed"] * 100.0 + joined["step"]).all()
    assert (joined["pc2"] == -joined["step"]).all()
    assert join_coords(trajectories, coords, ["l2"]) is trajectories  # no pc: untouched


def test_join_refuses_checkpoints_without_probe_losses_and_missing_components():
    trajectories, coords = trajectories_and_coords()
    last = coords.index[(coords["seed"] == 2) & (coords["step"] == 110)]
    no_losses = r"1 checkpoint\(s\) have no probe losses, e\.g\. seed 2 step 110"
    with pytest.raises(ValueError, match=no_losses):
        join_coords(trajectories, coords.drop(index=last), ["pc1"])
    with pytest.raises(ValueError, match=r"\['pc4'\] not in the PCA's 3 components"):
        join_coords(trajectories, coords, ["pc1", "pc4"])
    with pytest.raises(ValueError, match=r"already have column\(s\) \['pc1'\]"):
        join_coords(trajectories.assign(pc1=0.0), coords, ["pc1"])


def test_checkpoints_without_finite_pcs_leave_their_run_out_as_diverged(caplog):
    trajectories, coords = trajectories_and_coords()
    left_out = (coords["seed"] == 1) & coords["step"].between(30, 40)
    coords.loc[left_out, ["pc1", "pc2", "pc3"]] = np.nan
    with caplog.at_level(logging.WARNING):
        joined = join_coords(trajectories, coords, ["l2", "pc1"])
    assert len(joined) == len(trajectories) and joined["pc1"].isna().sum() == 2
    assert "2 checkpoint(s) of run(s) [1] have no finite PCs" in caplog.text
    prepared = prepare_sequences(
        joined, ["l2", "pc1"], max_checkpoints=100, normalize="per_run",
        val_fraction=0.5, seed=0,
    )  # fmt: skip
    assert prepared.excluded == [{"seed": 1, "reason": "diverged: non-finite pc1 from step 30"}]
    assert sorted(prepared.table["seed"].unique()) == [0, 2]


def test_the_fit_survives_the_removal_of_stale_results(tmp_path):
    setting = tmp_path / "results" / "parity"
    for name in ("pca/coords.parquet", "map.json", "function_space.parquet"):
        (setting / name).parent.mkdir(parents=True, exist_ok=True)
        (setting / name).write_text("x")
    remove_stale_results(setting)
    assert (setting / "pca" / "coords.parquet").exists()
    assert not (setting / "map.json").exists() and not (setting / "function_space.parquet").exists()


@pytest.mark.slow
def test_pc_features_end_to_end(probe_run):
    """tests/configs/tiny_probe.yaml with features [l2, pc1, pc2] (the shared run): the
    HMM reads the PCs."""
    assert PC_FEATURES == ["l2", "pc1", "pc2"]
    results = probe_run / "results" / "parity"
    trajectories = pd.read_parquet(results / "trajectories.parquet")
    space = pd.read_parquet(results / "function_space.parquet")
    merged = trajectories.merge(space, on=["seed", "step"], suffixes=("", "_map"))
    assert len(merged) == len(trajectories) == len(space) > 0
    assert (merged["pc1"] == merged["pc1_map"]).all() and (merged["pc2"] == merged["pc2_map"]).all()
    assert "pc3" not in trajectories.columns
    sequences = pd.read_parquet(results / "hmm" / "sequences.parquet")
    assert ["l2", "pc1", "pc2"] == [
        c for c in sequences.columns if c not in ("seed", "step", "split")
    ]
    assert (results / "map.json").is_file()


def test_recorded_runs_take_pc_features_with_probe_components(tmp_path):
    config = load_yaml(TINY)
    entry = {
        "source": "runs",
        "runs": str(tmp_path),
        "features": ["l2", "pc2"],
        "convergence": {"column": "eval_accuracy", "threshold": 0.9},
    }
    config["settings"] = {"mine": entry}
    with pytest.raises(ConfigError, match=r"settings\.mine\.features: \['pc2'\].*probe"):
        validate_config(config)
    entry["probe"] = {"components": 2}
    assert validate_config(config)["mine"].features == ["l2", "pc2"]
    entry["probe"] = {"components": 1}
    with pytest.raises(ConfigError, match=r"settings\.mine\.probe\.components: 1"):
        validate_config(config)


@pytest.mark.slow
def test_recorded_runs_with_pc_features_end_to_end(recorded_examples, tmp_path):
    """examples/plain_loop.py records 4 seeds with probe losses; setting `plain` of the
    shared run maps them with features [l2, pc1]. Nothing reruns while the recorded files
    are unchanged; a file whose content changed under an old mtime reruns its settings."""
    config = yaml.safe_load((recorded_examples / "config.yaml").read_text())
    assert config["settings"]["plain"]["features"] == ["l2", "pc1"]
    results = recorded_examples / "results" / "plain"
    trajectories = pd.read_parquet(results / "trajectories.parquet")
    space = pd.read_parquet(results / "function_space.parquet")
    merged = trajectories.merge(space, on=["seed", "step"], suffixes=("", "_map"))
    assert len(merged) == len(trajectories) == 4 * 21
    assert (merged["pc1"] == merged["pc1_map"]).all() and "pc2" not in trajectories.columns
    assert (results / "map.json").is_file()
    work = copy_run(recorded_examples, tmp_path / "copy")
    dry = run_workflow(work, work / "config.yaml", extra_args=["-n"])
    assert "Nothing to be done" in dry.stdout
    path = work / "runs" / "plain_loop" / "seed1" / "metrics.parquet"
    stat = path.stat()
    table = pd.read_parquet(path)
    table.loc[3, "l2"] += 1.0
    table.to_parquet(path, index=False)
    os.utime(path, (stat.st_atime, stat.st_mtime))  # an old time: only the content says so
    jobs = planned_jobs(work, work / "config.yaml")
    rerun = {job.wildcard_dict["setting"] for job in jobs if job.rule == "collect_trajectories"}
    assert rerun == {"plain_loop", "plain"}  # both read plain_loop's runs
