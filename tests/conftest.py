"""Shared helpers: run the workflow as plain Snakemake on a config in a directory.

``run_workflow(workdir, configfile)`` is the contract's command line
(``snakemake -s <repo>/Snakefile --directory <dir> --configfile <cfg> --cores N``) in a
subprocess, so a test sees what a user sees. ``planned_jobs(...)`` reads a dry run's job
list, and ``copy_run`` clones a finished run (outputs, mtimes and Snakemake's metadata)
for a test to change.

A workflow run that several tests read is built once per session, across pytest-xdist
workers (``shared_directory``), and each test asserts on its part: ``tiny_run``
(tests/configs/tiny.yaml), ``probe_run`` (tests/configs/tiny_probe.yaml).
"""

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from slurm_cluster import slurm_cluster  # noqa: F401 (the session's SLURM test cluster)

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
# Long enough for the tiny config on 2 cores with a loaded machine; a hung run still fails.
RUN_TIMEOUT_S = 900


def pytest_configure(config) -> None:
    """Hypothesis keeps caches in .hypothesis/ of the working directory: keep them out of
    the checkout (tests write only into temporary directories); so does the digests'."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"trainmap-hypothesis-{os.getuid()}")
    # The code digests' cache (trainmap.io.provenance), shared by the workers and the
    # workflows they start, outside the user's own cache folder.
    os.environ.setdefault(
        "TRAINMAP_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"trainmap-cache-{os.getuid()}")
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Work units for ``make test`` (pytest-xdist, ``--dist loadfile``): a module's tests
    stay on one worker, so its module fixtures are built once, and the tests on the SLURM
    test cluster (one per machine, behind a lock held for the worker's session) are all in
    tests/test_slurm.py, which goes first: it is the longest (mostly waiting on the
    cluster) and the other worker runs the rest meanwhile. (``--dist loadgroup`` with
    ``xdist_group`` marks is not used: with pytest 9.2 and pytest-xdist 3.8 it spread a
    group's tests over both workers, and the second worker's SLURM tests waited out the
    lock and were skipped.) Without xdist the order changes only."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)  # stable sort


class WorkflowFailed(AssertionError):
    """A Snakemake run exited non-zero; the message carries the tail of its output."""


def snakemake_command(
    workdir: str | Path,
    configfile: str | Path | None = TINY_CONFIG,
    *,
    targets: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    cores: int | None = 2,
    snakefile: str | Path = SNAKEFILE,
) -> list[str]:
    """The argv of one Snakemake run, with this interpreter's Snakemake.

    ``cores=None`` leaves ``--cores`` to a profile; ``configfile=None`` to the Snakefile.
    """
    # Targets first: --configfile takes several values and would swallow them.
    command = [sys.executable, "-m", "snakemake", *targets, "-s", str(snakefile)]
    command += ["--directory", str(workdir)]
    if cores is not None:
        command += ["--cores", str(cores)]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    return command + [*extra_args]


def run_workflow(
    workdir: str | Path,
    configfile: str | Path | None = TINY_CONFIG,
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = RUN_TIMEOUT_S,
    **command_args,
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` (created if missing); stdout and stderr are merged.

    command_args: ``snakemake_command``'s (targets, extra_args, cores, snakefile).
    Raises ``WorkflowFailed`` with the output's tail when ``check`` and the run fails.
    """
    Path(workdir).mkdir(parents=True, exist_ok=True)
    command = snakemake_command(workdir, configfile, **command_args)
    result = subprocess.run(
        command,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-60:])
        raise WorkflowFailed(f"{' '.join(command)}\nexited {result.returncode}:\n{tail}")
    return result


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: tuple[tuple[str, str], ...]

    @property
    def wildcard_dict(self) -> dict[str, str]:
        return dict(self.wildcards)


_RULE_LINE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):$")
_WILDCARDS_LINE = re.compile(r"^\s+wildcards: (.*)$")


def parse_jobs(output: str) -> list[PlannedJob]:
    """The jobs a Snakemake log announces (``rule NAME:`` blocks), in order.

    Works on a dry run (``-n``) and on a real run, group jobs included (their rule blocks
    are indented); wildcard values must not contain ", ".
    """
    jobs: list[PlannedJob] = []
    rule: str | None = None
    wildcards: tuple[tuple[str, str], ...] = ()
    for line in [*output.splitlines(), ""]:
        if rule is not None and (not line.strip() or _RULE_LINE.match(line)):
            jobs.append(PlannedJob(rule, wildcards))
            rule, wildcards = None, ()
        if match := _RULE_LINE.match(line):
            rule = match.group(1)
        elif rule is not None and (match := _WILDCARDS_LINE.match(line)):
            pairs = (item.split("=", 1) for item in match.group(1).split(", "))
            wildcards = tuple((key, value) for key, value in pairs)
    return jobs


def planned_jobs(
    workdir: str | Path, configfile: str | Path | None = TINY_CONFIG, **kwargs
) -> list[PlannedJob]:
    """The jobs a run would execute now, from a dry run; excludes the target rule ``all``."""
    extra = ["--dry-run", *kwargs.pop("extra_args", ())]
    result = run_workflow(workdir, configfile, extra_args=extra, **kwargs)
    return [job for job in parse_jobs(result.stdout) if job.rule != "all"]


def copy_run(source: Path, destination: Path) -> Path:
    """Clone a finished run directory, keeping mtimes and ``.snakemake`` metadata."""
    ignore = shutil.ignore_patterns("locks", "incomplete", "slurm_logs", "log")
    shutil.copytree(source, destination, symlinks=True, ignore=ignore)
    return destination


# Folders of tools, not of the workflow: bytecode, caches, the venv, git itself.
NOT_WORKFLOW_OUTPUT = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                       ".hypothesis"}  # fmt: skip


def repository_files() -> dict[str, tuple[int, int]]:
    """Every file in the repository checkout (path -> mtime in ns, size), tool folders
    excepted. A user's own results/ and logs/ are in it: the tiny run must change none."""
    files = {}
    for folder, subfolders, names in os.walk(REPO):
        subfolders[:] = [d for d in subfolders if d not in NOT_WORKFLOW_OUTPUT]
        for name in names:
            path = Path(folder) / name
            info = path.lstat()
            files[str(path.relative_to(REPO))] = (info.st_mtime_ns, info.st_size)
    return files


def shared_directory(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """A directory that ``build(directory)`` fills once per test session, however many
    pytest-xdist workers ask for it: the first takes a lock (``fcntl.flock``) and builds,
    the others wait on the lock and reuse the result. A failed build is recorded, so that
    the others fail with its error instead of building again. Tests copy the directory
    (``copy_run``) before changing anything in it.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's basetemp
    directory, built, failed = root / name, root / f"{name}.built", root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failed.exists():
            raise WorkflowFailed(f"{name}, built by another worker:\n{failed.read_text()}")
        if not built.exists():
            try:
                build(directory)
            except BaseException as error:
                failed.write_text(f"{type(error).__name__}: {error}")
                raise
            built.touch()
    return directory


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run of the tiny config (target ``all``) and its report (``report.html``),
    built once per session; copy it before changing it.

    The files of the repository checkout the run created or changed are listed in
    ``repo_writes(tiny_run)`` (a test asserts there are none).
    """

    def build(workdir: Path) -> None:
        before = repository_files()
        run_workflow(workdir, TINY_CONFIG)
        run_workflow(workdir, TINY_CONFIG, extra_args=["--report", "report.html"])
        after = repository_files()
        changed = sorted(path for path, stamp in after.items() if before.get(path) != stamp)
        repo_writes(workdir).write_text(json.dumps(changed))

    return shared_directory(tmp_path_factory, "tiny_run", build)


def repo_writes(run: Path) -> Path:
    """The JSON list of the checkout's files a shared run created or changed (beside it:
    inside, a copy would carry it)."""
    return run.with_name(f"{run.name}.repo_writes.json")


PROBE_CONFIG = REPO / "tests" / "configs" / "tiny_probe.yaml"
PC_FEATURES = ["l2", "pc1", "pc2"]


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory) -> Path:
    """A finished run of tests/configs/tiny_probe.yaml with parity's features
    ``PC_FEATURES`` (the HMM reads PCs of the probe losses), built once per session; its
    config is ``config.yaml`` inside it."""

    def build(workdir: Path) -> None:
        config = yaml.safe_load(PROBE_CONFIG.read_text())
        config["settings"]["parity"]["features"] = PC_FEATURES
        workdir.mkdir(parents=True)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        run_workflow(workdir, workdir / "config.yaml")

    return shared_directory(tmp_path_factory, "probe_run", build)


EXAMPLES = REPO / "examples"


def run_example(name: str, directory: Path) -> None:
    """examples/<name>.py, recording its 4 seeds into ``directory`` as a user would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _importable(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


# Example -> (convergence column, threshold) and what it needs beyond the package.
EXAMPLE_SETTINGS = {
    "plain_loop": ("eval_accuracy", 0.85, ()),
    "hf_trainer": ("eval_accuracy", 0.2, ("accelerate",)),
    "lightning_module": ("val_accuracy", 0.85, ("lightning",)),
}


@pytest.fixture(scope="session")
def recorded_examples(tmp_path_factory) -> Path:
    """The examples' recorded runs (runs/<example>/, the ones whose libraries are
    installed) mapped by one workflow run, built once per session; its config is
    ``config.yaml`` inside it. Setting ``plain`` maps plain_loop's runs again with PC
    features [l2, pc1] (probe components 2)."""

    def build(workdir: Path) -> None:
        hmm = {"states": [1, 2], "restarts": 1, "n_iter": 8, "covariance": "diag",
               "val_fraction": 0.5}  # fmt: skip
        config = {"settings": {}, "hmm": hmm}
        workdir.mkdir(parents=True)
        for name, (column, threshold, needs) in EXAMPLE_SETTINGS.items():
            if not _importable(*needs):
                continue
            run_example(name, workdir / "runs" / name)
            config["settings"][name] = {
                "source": "runs",
                "runs": f"runs/{name}",  # relative to the working directory
                "features": ["l2", "spectral", "var_w"],
                "convergence": {"column": column, "threshold": threshold},
            }
        config["settings"]["plain_loop"]["probe"] = {"components": 3}  # it logs probe_losses
        config["settings"]["plain"] = {
            **config["settings"]["plain_loop"],
            "features": ["l2", "pc1"],
            "probe": {"components": 2},
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        run_workflow(workdir, workdir / "config.yaml")

    return shared_directory(tmp_path_factory, "recorded_examples", build)


# One training job for two seeds, long enough to be killed in the middle of seed 1.
KILL_CONFIG = {
    "source": "train",
    "task": "sparse_parity",
    "seeds": 2,
    "seeds_per_job": 2,
    "n_bits": 10,
    "n_train": 200,
    "n_eval": 50,
    "hidden": 32,
    "epochs": 60,
    "eval_every": 1,
    "device": "cpu",
    "resume_every": 0,
    "features": ["l2", "spectral"],
    "convergence": {"column": "eval_accuracy", "threshold": 0.9},
}
RUNS = [f"results/parity/runs/seed{s}/{f}" for s in (0, 1)
        for f in ("metrics.parquet", "model.safetensors")]  # fmt: skip


def kill_config(path: Path, vectorize: bool | str) -> Path:
    """A config of KILL_CONFIG's setting (named parity) with this ``vectorize``."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["settings"] = {"parity": {**KILL_CONFIG, "vectorize": vectorize}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory) -> Path:
    """KILL_CONFIG's runs trained without interruption (one after another), once per
    session: the reference of the kill tests (tests/training/test_resume.py; vectorised
    training is bit-identical) and of the SLURM requeue test."""

    def build(workdir: Path) -> None:
        workdir.mkdir(parents=True)
        configfile = kill_config(workdir / "config.yaml", vectorize=False)
        run_workflow(workdir, configfile, targets=RUNS, cores=1)

    return shared_directory(tmp_path_factory, "resume_reference", build)
