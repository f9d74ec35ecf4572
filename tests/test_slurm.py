"""The workflow on a real SLURM cluster through profiles/slurm, as a user would submit it.

The session's cluster (tests/slurm_cluster.py: a single-node cluster on localhost, one
fake GPU, started once per session; all the SLURM tests are in this module, so that one
test process holds it: pytest-xdist's --dist loadfile keeps a module on one worker). The tests run
with a copy of profiles/slurm in which only the site's values differ: account and
partition of the test cluster, its CPUs and memory, the squeue status command (the
cluster keeps no accounting database) and shorter polling delays.

The four workflows submitted to the cluster (the tiny config, a retried job, a wrong
partition, a requeued training job) start together, at the first test that asks for
``submitted``, and each test waits for its own: most of their time is waiting on the
plugin's status checks (a wait that grows by 10 s while nothing finishes), which run side
by side instead of one after another.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import (
    KILL_CONFIG,
    REPO,
    RUNS,
    TINY_CONFIG,
    kill_config,
    run_workflow,
    snakemake_command,
)
from slurm_cluster import slurm_job

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
# The plugin logs a group job under group_<group>_<its rules>/, a job under rule_<rule>/.
JOB_KIND = re.compile(r"slurm_logs/(group_[a-z0-9]+(?=_)|rule_\w+(?=/))")


def snakemake_stdout(*args: str) -> str:
    """Snakemake's output, run in a temporary directory (it creates .snakemake/ there)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args]
    with tempfile.TemporaryDirectory() as workdir:
        return subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, check=True
        ).stdout


@pytest.mark.parametrize("path", sorted((REPO / "profiles").glob("*/config.yaml")),
                         ids=lambda path: path.parent.name)  # fmt: skip
def test_profile_uses_known_options_and_rules(path):
    """Snakemake ignores a profile key that is no option, and a rule name that is no rule:
    a typo would silently drop a setting (a group, a resource, a scope)."""
    profile = yaml.safe_load(path.read_text())
    options = set(re.findall(r"--([a-z0-9-]+)", snakemake_stdout("--help")))
    assert set(profile) <= options, f"unknown options {sorted(set(profile) - options)}"
    rules = set(snakemake_stdout("--list-rules").split())
    named = set(profile.get("groups", {})) | set(profile.get("set-resources", {}))
    named |= set(profile.get("set-threads", {}))
    assert named <= rules, f"unknown rules {sorted(named - rules)}"
    groups = set(profile.get("groups", {}).values())
    assert set(profile.get("group-components", {})) <= groups


def write_test_profile(directory: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """profiles/slurm with the test cluster's site values, then ``edit``; returns its dir."""
    profile = yaml.safe_load(PROFILE.read_text())
    defaults = profile["default-resources"]
    # The shipped profile only holds placeholders: a user must name their own.
    assert defaults["slurm_account"].startswith("<") and defaults["slurm_partition"][0] == "<"
    defaults.update(slurm_account="trainmaptest", slurm_partition="test")
    defaults["mem_mb"] = "500 * attempt"
    profile["set-resources"]["train_run"]["mem_mb"] = "1000 * attempt"
    profile.update(
        {
            "cores": os.cpu_count(),
            "latency-wait": 5,
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 3,
        }
    )
    if edit is not None:
        edit(profile)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def submissions(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, SLURM log path) of every sbatch call a Snakemake run made."""
    return SUBMITTED.findall(output)


@pytest.mark.slow
@pytest.mark.slurm
def test_cluster_runs_a_gpu_job(slurm_cluster, tmp_path):
    """The fixture's cluster takes `--gpus=1` jobs and runs job steps (srun)."""
    out = tmp_path / "job.out"
    job_id = subprocess.run(
        ["sbatch", "--parsable", "-A", "trainmaptest", "-p", "test", "--gpus=1",
         f"--output={out}", "--wrap", "srun -n1 sh -c 'echo gpu=$CUDA_VISIBLE_DEVICES'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for _ in range(60):
        if slurm_job(job_id)["JobState"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.5)
    assert slurm_job(job_id)["JobState"] == "COMPLETED"
    assert out.read_text().strip() == "gpu=0"


def jobs_of(output: str) -> list[tuple[str, dict[str, str]]]:
    """(SLURM log path, ``scontrol show job``) of every job a Snakemake run submitted, in
    order, read as soon as the run ends (the cluster forgets a job MinJobAge after it ends)."""
    return [(log, slurm_job(job_id)) for job_id, log in submissions(output)]


def run_tiny_config(directory: Path) -> tuple[Path, dict]:
    """The tiny config through sbatch: (its working directory, its jobs)."""
    profile = write_test_profile(directory / "profile")
    workdir = directory / "run"
    result = run_workflow(
        workdir, TINY_CONFIG, cores=None, extra_args=["--workflow-profile", str(profile)]
    )
    return workdir, jobs_of(result.stdout)


def run_flaky(directory: Path, edit=None, check=True) -> tuple[Path, object, dict]:
    """flaky_workflow through sbatch: (working directory, Snakemake's result, its jobs)."""
    profile = write_test_profile(directory / "profile", edit)
    workdir = directory / "run"
    result = run_workflow(
        workdir, None, cores=None, snakefile=flaky_workflow(directory), check=check,
        extra_args=["--workflow-profile", str(profile)],
    )  # fmt: skip
    return workdir, result, jobs_of(result.stdout)


def wrong_partition(profile: dict) -> None:
    profile["default-resources"]["slurm_partition"] = "nosuchpartition"
    profile["retries"] = 0


@pytest.fixture(scope="module")
def submitted(slurm_cluster, tmp_path_factory):
    """The module's four SLURM workflows, started together: name -> Future of what its
    test asserts on (a failed run raises from ``result()``)."""
    root = tmp_path_factory.mktemp("submitted")
    scenarios = {
        "tiny": lambda: run_tiny_config(root / "tiny"),
        "retry": lambda: run_flaky(root / "retry"),
        "wrong_partition": lambda: run_flaky(root / "partition", wrong_partition, check=False),
        "requeue": lambda: requeue_training_job(root / "requeue"),
    }
    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
        futures: dict[str, Future] = {name: pool.submit(run) for name, run in scenarios.items()}
        yield futures


@pytest.mark.slow
@pytest.mark.slurm
def test_tiny_workflow_on_slurm_matches_local_run(submitted, tiny_run):
    """Every job goes through sbatch; every table and JSON equals the local run's."""
    workdir, jobs = submitted["tiny"].result()
    assert all(job["JobState"] == "COMPLETED" for _, job in jobs)
    # The profile's groups: all three training jobs (parity's two seeds share one) in one
    # SLURM job, unpacking on the submitting host (local rule), each setting's
    # analysis in one, and summarize_settings alone.
    kinds = sorted(JOB_KIND.search(log).group(1) for log, _ in jobs)
    assert kinds == ["group_analysis", "group_analysis", "group_train", "rule_summarize_settings"]
    # A group runs its jobs one at a time, and asks for that: one job's CPUs, the sum of
    # the jobs' runtimes (3 x 30 min for the training group).
    for log, job in jobs:
        assert job["NumCPUs"] == "1"
        if "group_train" in log:
            assert job["TimeLimit"] == "01:30:00"

    compare_results(tiny_run / "results", workdir / "results")


def compare_results(expected: Path, actual: Path) -> None:
    """The same files; tables, JSON, CSV, Markdown and weights identical (figures only
    present: PNG bytes are the plotting library's business)."""
    names = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(actual) for p in actual.rglob("*") if p.is_file())
    for name in names:
        a, b = expected / name, actual / name
        if name.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), obj=str(name))
        elif name.suffix != ".png":
            assert a.read_bytes() == b.read_bytes(), name
    assert {name.suffix for name in names} >= {".parquet", ".json", ".csv", ".safetensors"}


def flaky_workflow(directory: Path) -> Path:
    """A one-rule workflow whose job fails on its first attempt, after writing output."""
    snakefile = directory / "Snakefile"
    snakefile.write_text(
        'rule flaky:\n'
        '    output: "out.txt"\n'
        '    resources: try_no=lambda wildcards, attempt: attempt, gpu=1\n'
        '    shell: "echo attempt {resources.try_no} > {output}; test {resources.try_no} -ge 2"\n'
    )  # fmt: skip
    return snakefile


@pytest.mark.slow
@pytest.mark.slurm
def test_failed_job_is_retried_with_more_memory(submitted):
    """The profile's retries resubmit a failed job, scaled by attempt; its partial output
    is discarded, so the kept file is the second attempt's. The job's `gpu: 1` reaches
    sbatch as --gpus=1 (the cluster's fake GPU)."""
    workdir, result, jobs = submitted["retry"].result()
    assert len(jobs) == 2, result.stdout
    (_, first), (_, second) = jobs
    assert first["JobState"] == "FAILED" and second["JobState"] == "COMPLETED"
    assert (first["MinMemoryNode"], second["MinMemoryNode"]) == ("500M", "1000M")
    assert first["TresPerJob"] == second["TresPerJob"] == "gres:gpu:1"
    assert (workdir / "out.txt").read_text() == "attempt 2\n"


@pytest.mark.slow
@pytest.mark.slurm
def test_unknown_partition_fails_with_the_plugins_error(submitted):
    """A wrong partition fails at submission with sbatch's message (docs/cluster.md)."""
    workdir, result, _ = submitted["wrong_partition"].result()
    assert result.returncode != 0
    assert "SLURM sbatch failed" in result.stdout
    assert "invalid partition specified: nosuchpartition" in result.stdout
    assert not (workdir / "out.txt").exists()


# Preemption on the real SLURM test cluster: a training job requeued mid-training resumes.
#
# `scontrol requeue` kills the running job and puts it back in the queue under the same job
# id, as a preempting partition does (PreemptMode=REQUEUE). The job then starts again from
# the top; the training must keep the seed it finished (`seed 0 finished in an earlier
# attempt`), continue the other from its last saved state (`resumed seed 1 from step N` in
# its log) and end with files byte-identical to an uninterrupted run: the session's
# `uninterrupted` run of the same config (conftest.py), which the local kill tests
# (tests/training/test_resume.py) compare with too, so nothing is trained twice for it.

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


def requeue_training_job(directory: Path) -> dict:
    """KILL_CONFIG's training job through sbatch, requeued once seed 1 has a saved state:
    Snakemake's exit code and output, the job's id and ``scontrol show job`` at the end,
    the training log of its second start, and the working directory."""
    directory.mkdir(parents=True)
    config = kill_config(directory / "requeue.yaml", vectorize=False)
    profile = write_test_profile(directory / "profile")
    assert yaml.safe_load((profile / "config.yaml").read_text())["slurm-requeue"] is True
    workdir = directory / "slurm"
    workdir.mkdir()
    output = directory / "snakemake.out"
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
    return {
        "returncode": process.returncode,
        "output": output.read_text(),
        "job": slurm_job(job_id),
        "log": text(train_log),  # the second start's
        "workdir": workdir,
    }


@pytest.mark.slow
@pytest.mark.slurm
def test_requeued_training_job_resumes_and_ends_byte_identical(submitted, uninterrupted):
    run = submitted["requeue"].result()
    assert run["returncode"] == 0, run["output"][-3000:]
    assert run["job"]["Restarts"] == "1"
    log = run["log"]
    assert "seed 0 finished in an earlier attempt of this job: not retrained" in log
    resumed = re.search(r"resumed seed 1 from step (\d+)", log)
    assert resumed, log[-2000:]
    steps_per_epoch = -(-KILL_CONFIG["n_train"] // 32)  # batch_size 32 (the default)
    assert 0 < int(resumed.group(1)) < KILL_CONFIG["epochs"] * steps_per_epoch
    for path in RUNS:
        assert (run["workdir"] / path).read_bytes() == (uninterrupted / path).read_bytes(), path


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
