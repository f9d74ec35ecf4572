"""The Snakemake workflow itself: dry runs of the paper config, a real tiny run."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from trainmap.config import load_yaml, validate_config
from trainmap.metrics import METRIC_COLUMNS, compute_metrics
from trainmap.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RUN_COLUMNS = ["setting", "seed", "step", "epoch", "train_loss", "eval_loss"]
RUN_COLUMNS += ["train_accuracy", "eval_accuracy", *METRIC_COLUMNS, "diverged"]


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    command += ["--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'job  count' table Snakemake prints for a dry run."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", dry_run_output, re.M)}


def test_paper_config_dry_run_counts_jobs(tmp_path):
    result = snakemake(tmp_path, ROOT / "config" / "paper.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    settings = validate_config(load_yaml(ROOT / "config" / "paper.yaml"))
    assert counts["train_run"] == sum(len(s.seeds) for s in settings.values()) == 3 * 40
    assert counts["collect_trajectories"] == 3
    assert not (tmp_path / "results").exists()


def test_bad_config_stops_before_any_job(tmp_path):
    config = load_yaml(ROOT / "tests" / "configs" / "tiny.yaml")
    config["settings"]["parity"]["seeds"] = [0, 3, 3]
    bad = tmp_path / "bad.yaml"
    bad.write_text(__import__("yaml").safe_dump(config))
    result = snakemake(tmp_path, bad)
    assert result.returncode != 0
    assert "settings.parity.seeds: [0, 3, 3]" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Train the tiny config (2 settings x 2 seeds) from a clean working directory."""
    workdir = tmp_path_factory.mktemp("tiny")
    targets = [f"results/{s}/trajectories.parquet" for s in ("parity", "modular")]
    result = snakemake(workdir, ROOT / "tests" / "configs" / "tiny.yaml", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["parity", "modular"])
def test_tiny_run_writes_contract_files(tiny_runs, setting):
    trajectories = pd.read_parquet(tiny_runs / f"results/{setting}/trajectories.parquet")
    assert list(trajectories.columns) == RUN_COLUMNS
    assert sorted(trajectories["seed"].unique()) == [0, 1]
    assert (trajectories["setting"] == setting).all()
    values = trajectories[RUN_COLUMNS[4:-1]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    for seed in (0, 1):
        run_dir = tiny_runs / f"results/{setting}/runs/seed{seed}"
        metrics = pd.read_parquet(run_dir / "metrics.parquet")
        expected = trajectories[trajectories["seed"] == seed].reset_index(drop=True)
        pd.testing.assert_frame_equal(metrics, expected)
        assert (tiny_runs / f"logs/{setting}/train_run/seed{seed}.log").read_text().count(
            "elapsed"
        ) == len(metrics)


@pytest.mark.slow
def test_saved_weights_are_the_last_checkpoint(tiny_runs):
    setting = validate_config(load_yaml(ROOT / "tests" / "configs" / "tiny.yaml"))["modular"]
    task = get_task(setting.task)
    model = task.make_model(task.params(**setting.params))
    state = load_file(tiny_runs / "results/modular/runs/seed1/model.safetensors")
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state)
    last = pd.read_parquet(tiny_runs / "results/modular/runs/seed1/metrics.parquet").iloc[-1]
    recomputed = compute_metrics(model.weight_groups())
    for column in METRIC_COLUMNS[:-3]:
        assert recomputed[column] == pytest.approx(last[column], rel=1e-9)
