"""Preemption on the real SLURM test cluster: a training job requeued mid-training resumes.

`scontrol requeue` kills the running job and puts it back in the queue under the same job
id, as a preempting partition does (PreemptMode=REQUEUE). The job then starts again from
the top; the training must continue from its last saved state (`resumed seed 0 from step
N` in its log) and end with files byte-identical to an uninterrupted run.
"""

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_workflow, snakemake_command
from test_slurm import slurm_cluster, slurm_job, write_test_profile  # noqa: F401 (fixture)

SEED_FILES = ["metrics.parquet", "model.safetensors"]
TARGETS = [f"results/parity/runs/seed0/{name}" for name in SEED_FILES]
WAIT_S = 900
MIDWAY = "epoch 100/300"  # requeued after this line of the training log
STEPS_PER_EPOCH = 32  # n_train 1000 / batch_size 32, rounded up


def requeue_config(tmp_path: Path) -> Path:
    """One parity seed training ~1 min on a loaded CPU, a state saved at every epoch."""
    setting = {
        "source": "train",
        "task": "sparse_parity",
        "seeds": 2,
        "epochs": 300,
        "eval_every": 1,
        "device": "cpu",
        "vectorize": False,
        "resume_every": 0,
        "convergence": {"column": "eval_accuracy", "threshold": 0.9},
    }
    path = tmp_path / "requeue.yaml"
    path.write_text(yaml.safe_dump({"settings": {"parity": setting}}))
    return path


def wait_for(condition, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"Snakemake ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {WAIT_S} s")
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.slurm
def test_requeued_training_job_resumes_and_ends_byte_identical(slurm_cluster, tmp_path):  # noqa: F811
    config = requeue_config(tmp_path)
    local = tmp_path / "local"
    run_workflow(local, config, targets=TARGETS, cores=1)

    profile = write_test_profile(tmp_path / "profile")
    assert yaml.safe_load((profile / "config.yaml").read_text())["slurm-requeue"] is True
    workdir = tmp_path / "slurm"
    workdir.mkdir()
    output = tmp_path / "snakemake.out"
    command = snakemake_command(
        workdir, config, targets=TARGETS, cores=None,
        extra_args=["--workflow-profile", str(profile)],
    )  # fmt: skip
    with output.open("w") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        try:
            state = workdir / "results/parity/runs/.resume-seed0/state.safetensors"
            train_log = workdir / "logs/parity/train_run/group0.log"
            wait_for(
                lambda: state.exists() and MIDWAY in train_log.read_text(),
                "training past epoch 100 with a saved state",
                process,
            )
            job_id = _train_job_id(output.read_text())
            assert slurm_job(job_id)["JobState"] == "RUNNING"
            subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
            process.wait(timeout=WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
    text = output.read_text()
    assert process.returncode == 0, text[-3000:]
    assert slurm_job(job_id)["Restarts"] == "1"
    log = (workdir / "logs/parity/train_run/group0.log").read_text()  # the second start's
    resumed = re.search(r"resumed seed 0 from step (\d+)", log)
    assert resumed, log[-2000:]
    assert 100 * STEPS_PER_EPOCH <= int(resumed.group(1)) < 300 * STEPS_PER_EPOCH
    for name in SEED_FILES:
        expected = (local / "results/parity/runs/seed0" / name).read_bytes()
        assert (workdir / "results/parity/runs/seed0" / name).read_bytes() == expected, name


def _train_job_id(text: str) -> str:
    """The SLURM job id of the training job, from Snakemake's output."""
    for line in text.splitlines():
        if "has been submitted with SLURM jobid" in line:
            return line.split("SLURM jobid ")[1].split()[0]
    raise AssertionError(f"no submission in Snakemake's output:\n{text[-2000:]}")
