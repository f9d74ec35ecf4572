"""Incremental reruns: after a change, Snakemake reruns exactly what the change affects.

Each test clones one finished run of tests/configs/tiny.yaml (outputs, mtimes and
Snakemake's metadata), changes one thing, and compares the dry run's job list with the
jobs that depend on what changed, which ``--forcerun TARGET`` lists. Config values reach
the rules through ``params:`` (Snakemake's params trigger), package code through each
rule's ``code=script_code(...)`` param (a digest of the script and the package modules it
imports), and script edits through the script's mtime (Snakemake's code trigger);
docs/cluster.md describes the mechanisms.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_CONFIG, PlannedJob, copy_run, planned_jobs, run_workflow

UPSTREAM_OF_HMM = {"train_run", "unpack_run", "collect_trajectories"}


@pytest.fixture
def workdir(tiny_run, tmp_path) -> Path:
    return copy_run(tiny_run, tmp_path / "run")


def write_config(path: Path, edit) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def forced(workdir: Path, *targets: str, **kwargs) -> set[PlannedJob]:
    """The jobs that depend on ``targets`` (rules or files): what a change there reruns."""
    return set(planned_jobs(workdir, extra_args=["--forcerun", *targets], **kwargs))


def trained(jobs) -> set[tuple[str, str]]:
    """(setting, seed) of the runs a plan retrains: unpack_run is one job per seed."""
    return {(j.wildcard_dict["setting"], j.wildcard_dict["seed"]) for j in jobs
            if j.rule == "unpack_run"}  # fmt: skip


def training_jobs(jobs) -> set[tuple[str, str]]:
    """(setting, group) of the train_run jobs of a plan."""
    return {(j.wildcard_dict["setting"], j.wildcard_dict["group"]) for j in jobs
            if j.rule == "train_run"}  # fmt: skip


def hmm_fits(jobs) -> set[PlannedJob]:
    """The per-K HMM fits: the jobs with a state-count wildcard."""
    return {job for job in jobs if "k" in job.wildcard_dict}


def mtimes(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_unchanged_run_does_nothing(workdir):
    assert planned_jobs(workdir) == []
    before = mtimes(workdir / "results")
    result = run_workflow(workdir)
    assert "Nothing to be done" in result.stdout
    assert mtimes(workdir / "results") == before


@pytest.mark.slow
def test_changed_hmm_option_refits_without_training(workdir, tmp_path):
    config = write_config(tmp_path / "config.yaml", lambda c: c["hmm"].update(n_iter=9))
    planned = set(planned_jobs(workdir, config))
    assert not {job.rule for job in planned} & UPSTREAM_OF_HMM
    fits = hmm_fits(forced(workdir, "train_run"))
    assert fits and fits <= planned
    # Everything downstream of the fits reruns too.
    (fit_rule,) = {job.rule for job in fits}
    assert forced(workdir, fit_rule) <= planned


@pytest.mark.slow
def test_changed_resume_interval_reruns_nothing(workdir, tmp_path):
    """resume_every never changes results, so it is no rerun trigger (common.smk)."""
    config = write_config(
        tmp_path / "config.yaml", lambda c: c["settings"]["parity"].update(resume_every=0)
    )
    assert planned_jobs(workdir, config) == []


@pytest.mark.slow
def test_changed_hyperparameter_retrains_only_its_setting(workdir, tmp_path):
    config = write_config(
        tmp_path / "config.yaml", lambda c: c["settings"]["parity"].update(hidden=24)
    )
    planned = set(planned_jobs(workdir, config))
    assert trained(planned) == {("parity", "0"), ("parity", "1")}
    assert training_jobs(planned) == {("parity", "0")}  # tiny.yaml: both seeds in one job
    runs = [f"results/parity/runs/seed{seed}/metrics.parquet" for seed in (0, 1)]
    assert planned == forced(workdir, *runs)
    assert not [job for job in planned if job.wildcard_dict.get("setting") == "modular"]


@pytest.mark.slow
def test_added_seed_trains_only_it_and_refits(workdir, tmp_path):
    config = write_config(
        tmp_path / "config.yaml", lambda c: c["settings"]["parity"].update(seeds=3)
    )
    planned = set(planned_jobs(workdir, config))
    assert trained(planned) == {("parity", "2")}
    assert training_jobs(planned) == {("parity", "1")}  # seeds 2-3 (seeds_per_job 2)
    parity_fits = {j for j in hmm_fits(forced(workdir, "train_run"))
                   if j.wildcard_dict["setting"] == "parity"}  # fmt: skip
    assert parity_fits <= planned
    assert not [job for job in planned if job.wildcard_dict.get("setting") == "modular"]

    runs = workdir / "results" / "parity" / "runs"
    kept = mtimes(runs) | mtimes(workdir / "results" / "modular")
    hmm_before = mtimes(workdir / "results" / "parity" / "hmm")
    # up to the refit model: what follows it is planned above, and run by other tests
    run_workflow(workdir, config, targets=["results/parity/hmm/selected.json"])
    assert {p: t for p, t in mtimes(runs).items() if "seed2" not in str(p)} == {
        p: t for p, t in kept.items() if p.is_relative_to(runs)
    }
    assert (runs / "seed2" / "metrics.parquet").exists()
    modular = workdir / "results" / "modular"
    assert mtimes(modular) == {p: t for p, t in kept.items() if p.is_relative_to(modular)}
    refit = mtimes(workdir / "results" / "parity" / "hmm")
    assert all(refit[p] > t for p, t in hmm_before.items())


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The workflow's code, copied with its mtimes, to edit without touching the repo."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy2(REPO / "Snakefile", copy / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("workflow", "envs", "config"):
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    return copy


@pytest.mark.slow
def test_code_changes_rerun_the_rules_that_run_the_code(workdir, repo_copy):
    snakefile = repo_copy / "Snakefile"
    assert planned_jobs(workdir, snakefile=snakefile) == []

    # A package module: every rule whose `code` param hashes it (metrics are computed
    # during training, so all runs retrain) and everything downstream.
    metrics = repo_copy / "workflow" / "trainmap" / "metrics" / "weights.py"
    # (a comment alone would not: digests are of the code's substance, io/provenance.py)
    metrics.write_text(metrics.read_text() + "\nEDITED = True\n")
    planned = set(planned_jobs(workdir, snakefile=snakefile))
    assert trained(planned) == {(s, str(seed)) for s in ("parity", "modular") for seed in (0, 1)}
    assert training_jobs(planned) == {("parity", "0"), ("modular", "0"), ("modular", "1")}
    assert planned == forced(workdir, "train_run", snakefile=snakefile)
    (repo_copy / "workflow" / "trainmap" / "metrics" / "weights.py").write_text(
        (REPO / "workflow" / "trainmap" / "metrics" / "weights.py").read_text()
    )
    assert planned_jobs(workdir, snakefile=snakefile) == []

    # A script: Snakemake compares its mtime with the outputs', so even a touch reruns.
    script = repo_copy / "workflow" / "scripts" / "collect_trajectories.py"
    os.utime(script)
    planned = set(planned_jobs(workdir, snakefile=snakefile))
    assert not trained(planned)
    assert planned == forced(workdir, "collect_trajectories", snakefile=snakefile)


def test_scripts_and_rules_read_config_only_through_params():
    """A value read from `config` outside `params:` would change results untracked."""
    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        assert "snakemake.config" not in script.read_text(), script.name
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        assert not re.search(r"(?<![.\w])config\s*[\[.]", rules.read_text()), rules.name


@pytest.mark.slow
def test_folds_under_split_rerun_nothing_and_kfold_refits_without_training(workdir, tmp_path):
    """hmm.folds only reaches the jobs under selection: kfold (common.smk)."""
    config = write_config(tmp_path / "folds.yaml", lambda c: c["hmm"].update(folds=2))
    assert planned_jobs(workdir, config) == []
    config = write_config(
        tmp_path / "kfold.yaml", lambda c: c["hmm"].update(selection="kfold", folds=2)
    )
    planned = set(planned_jobs(workdir, config))
    assert not {job.rule for job in planned} & UPSTREAM_OF_HMM
    rules = [job.rule for job in planned]
    assert rules.count("fit_hmm_fold") == 2 * 2 * 2 and rules.count("prepare_sequences") == 2
