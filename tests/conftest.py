"""Shared helpers: run the workflow as plain Snakemake on a config in a directory.

``run_workflow(workdir, configfile)`` is the contract's command line
(``snakemake -s <repo>/Snakefile --directory <dir> --configfile <cfg> --cores N``) in a
subprocess, so a test sees what a user sees. ``planned_jobs(...)`` reads a dry run's job
list, ``tiny_run`` is one finished run of tests/configs/tiny.yaml shared by the session,
and ``copy_run`` clones it (outputs, mtimes and Snakemake's metadata) for a test to change.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the groups into scopes
def pytest_collection_modifyitems(config, items) -> None:
    """Work units for ``make test`` (pytest-xdist, ``--dist loadgroup``): a module's tests
    stay on one worker, so its module fixtures are built once, and the tests on the SLURM
    test cluster (one per machine, behind a lock) form one unit that goes first: it is
    the longest (~10 min, mostly waiting on the cluster) and the other worker runs the
    rest meanwhile. Without xdist the order changes only."""
    for item in items:
        slurm = item.get_closest_marker("slurm") is not None
        item.add_marker(pytest.mark.xdist_group("slurm" if slurm else item.nodeid.split("::")[0]))
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
REPO_WRITES = pytest.StashKey[list[str]]()


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, request) -> Path:
    """A finished run of the tiny config (target ``all``); copy it before changing it.

    The files of the repository checkout the run created or changed are kept in
    ``request.config.stash[REPO_WRITES]`` (a test asserts there are none).
    """
    workdir = tmp_path_factory.mktemp("tiny_run")
    before = repository_files()
    run_workflow(workdir, TINY_CONFIG)
    after = repository_files()
    request.config.stash[REPO_WRITES] = sorted(
        path for path, stamp in after.items() if before.get(path) != stamp
    )
    return workdir
