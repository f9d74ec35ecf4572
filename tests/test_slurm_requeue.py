"""Preemption on the real SLURM test cluster: a training job requeued mid-training resumes.

`scontrol requeue` kills the running job and puts it back in the queue under the same job
id, as a preempting partition does (PreemptMode=REQUEUE). The job then starts again from
the top; the training must keep the seed it finished (`seed 0 finished in an earlier
attempt`), continue the other from its last saved state (`resumed seed 1 from step N` in
its log) and end with files byte-identical to an uninterrupted run: the session's
`uninterrupted` run of the same config (conftest.py), which the local kill tests
(tests/training/test_resume.py) compare with too, so nothing is trained twice for it.
"""

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import KILL_CONFIG, RUNS, kill_config, snakemake_command
from slurm_cluster import slurm_job
from test_slurm import write_test_profile

WAIT_S = 900
# Requeued once seed 1 (the group's second) has trained a few epochs and saved its state.
MIDWAY = "seed 1 epoch 5/"


def wait_for(condition, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"Snakemake ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {WAIT_S} s")
        time.sleep(0.05)


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
@pytest.mark.slurm
def test_requeued_training_job_resumes_and_ends_byte_identical(
    slurm_cluster, uninterrupted, tmp_path
):
    config = kill_config(tmp_path / "requeue.yaml", vectorize=False)
    profile = write_test_profile(tmp_path / "profile")
    assert yaml.safe_load((profile / "config.yaml").read_text())["slurm-requeue"] is True
    workdir = tmp_path / "slurm"
    workdir.mkdir()
    output = tmp_path / "snakemake.out"
    command = snakemake_command(
        workdir, config, targets=RUNS, cores=None,
        extra_args=["--workflow-profile", str(profile)],
    )  # fmt: skip
    with output.open("w") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        try:
            state = workdir / "results/parity/runs/.resume-seed1/state.safetensors"
            train_log = workdir / "logs/parity/train_run/group0.log"
            wait_for(
                lambda: state.exists() and MIDWAY in text(train_log),
                "seed 1 training with a saved state",
                process,
            )
            job_id = _train_job_id(output.read_text())
            assert slurm_job(job_id)["JobState"] == "RUNNING"
            subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
            # SLURM holds a requeued job for a while (BeginTime); release it at once.
            _release(job_id)
            process.wait(timeout=WAIT_S)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, output.read_text()[-3000:]
    assert slurm_job(job_id)["Restarts"] == "1"
    log = (workdir / "logs/parity/train_run/group0.log").read_text()  # the second start's
    assert "seed 0 finished in an earlier attempt of this job: not retrained" in log
    resumed = re.search(r"resumed seed 1 from step (\d+)", log)
    assert resumed, log[-2000:]
    steps_per_epoch = -(-KILL_CONFIG["n_train"] // 32)  # batch_size 32 (the default)
    assert 0 < int(resumed.group(1)) < KILL_CONFIG["epochs"] * steps_per_epoch
    for path in RUNS:
        assert (workdir / path).read_bytes() == (uninterrupted / path).read_bytes(), path


def _release(job_id: str) -> None:
    """Start a requeued job now rather than after SLURM's hold; a cluster that refuses the
    update (or has released it already) still runs it later."""
    deadline = time.monotonic() + 30
    while slurm_job(job_id)["JobState"] not in ("PENDING", "RUNNING", "COMPLETED"):
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                   capture_output=True)  # fmt: skip


def _train_job_id(text: str) -> str:
    """The SLURM job id of the training job, from Snakemake's output."""
    for line in text.splitlines():
        if "has been submitted with SLURM jobid" in line:
            return line.split("SLURM jobid ")[1].split()[0]
    raise AssertionError(f"no submission in Snakemake's output:\n{text[-2000:]}")
