"""``trainmap run [CONFIG] [--profile NAME|DIR] [snakemake arguments]``: the packaged workflow.

Runs the workflow that ships with the package (``trainmap.workflow_dir``) with the current
directory (or Snakemake's ``--directory``) as the working directory: results/, logs/ and
.snakemake/ go there, relative data paths in the config resolve against it. Without
CONFIG it runs the default config (the demo). ``--profile`` names one of the packaged
profiles (``workstation``, the default, or ``slurm``) or a profile folder of one's own;
every other argument goes to Snakemake unchanged.

Before Snakemake starts (and before anything is written but the working directory itself):
each config file must exist and pass ``trainmap check``, and the working directory's
results/ must not hold the results of another config. Which config a folder's results
belong to is recorded in ``results/.trainmap-run.json`` after each run that left results
there (a dry run leaves none); a folder without that record (results of plain
``snakemake``) is refused only when it holds settings the config does not define.
"""

import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainmap.config import check
from trainmap.config.loader import load_located
from trainmap.errors import ConfigError, CorruptFileError
from trainmap.io.files import read_json, write_json
from trainmap.workflow_dir import workflow_dir

RECORD = Path("results") / ".trainmap-run.json"
# The one folder under results/ that is not a setting's (rule compare_settings);
# tests/test_run.py checks the rule files for others.
NOT_SETTINGS = {"comparisons"}
DEFAULT_PROFILE = "workstation"
USAGE = """\
usage: trainmap run [CONFIG] [--profile NAME|DIR] [snakemake arguments ...]

Run trainmap's workflow on CONFIG (default: the packaged demo config) with the current
directory as the working directory (results/, logs/). --profile: a packaged profile
({profiles}; default {default}) or a profile folder of your own. Every other argument is
Snakemake's (snakemake --help), e.g. --cores 4, --dry-run, --directory DIR, a target file.
"""


class RunError(Exception):
    """A problem found before Snakemake starts; the message names the file."""


@dataclass(frozen=True)
class Invocation:
    """What ``trainmap run`` was asked: the CONFIG argument (None: none given), the profile
    folder (None: the user passes --workflow-profile), Snakemake's arguments as given, the
    config files either names (None: the default config) and the working directory."""

    config: Path | None
    profile: Path | None
    snakemake: list[str]
    configs: list[Path] | None
    directory: Path


def packaged_profiles() -> list[str]:
    return sorted(p.parent.name for p in (workflow_dir() / "profiles").glob("*/config.yaml"))


def _option_values(args: list[str], names: tuple[str, ...]) -> list[str]:
    """Values of a Snakemake option in ``args`` (``--name V``, ``--name=V``; an option
    that takes several values, such as --configfile, up to the next ``-`` argument)."""
    values = []
    for i, arg in enumerate(args):
        if arg in names:
            for value in args[i + 1 :]:
                if value.startswith("-"):
                    break
                values.append(value)
                if arg in ("-d", "--directory"):
                    break
        elif "=" in arg and arg.split("=", 1)[0] in names:
            values.append(arg.split("=", 1)[1])
    return values


def _has_option(args: list[str], *names: str) -> bool:
    return any(arg in names or arg.split("=", 1)[0] in names for arg in args)


def _profile(value: str | None, snakemake: list[str]) -> Path | None:
    own = _has_option(snakemake, "--workflow-profile")
    if own and value is not None:
        raise RunError("give --profile or --workflow-profile, not both")
    if own:
        return None
    value = value or DEFAULT_PROFILE
    if value in packaged_profiles():
        return workflow_dir() / "profiles" / value
    folder = Path(value)
    if (folder / "config.yaml").is_file():
        return folder.absolute()
    raise RunError(
        f"--profile {value}: neither a packaged profile ({', '.join(packaged_profiles())}) "
        "nor a folder holding a config.yaml"
    )


def parse(argv: list[str]) -> Invocation:
    """Split ``trainmap run``'s arguments from Snakemake's (kept as given)."""
    args = list(argv)
    config = args.pop(0) if args and not args[0].startswith("-") else None
    profile, snakemake = None, []
    while args:
        arg = args.pop(0)
        if arg == "--profile":
            if not args or args[0].startswith("-"):
                raise RunError("--profile needs a value: a profile name or folder")
            profile = args.pop(0)
        elif arg.startswith("--profile="):
            profile = arg.removeprefix("--profile=")
        else:
            snakemake.append(arg)
    if _has_option(snakemake, "-s", "--snakefile"):
        raise RunError(
            "trainmap run runs the packaged workflow: drop --snakefile (plain snakemake -s "
            "runs another one)"
        )
    given = _option_values(snakemake, ("--configfile", "--configfiles"))
    if config is not None and given:
        raise RunError(f"the config is given twice ({config} and --configfile): give it once")
    configs = [Path(c) for c in ([config] if config is not None else given)] or None
    directories = _option_values(snakemake, ("-d", "--directory"))
    directory = Path(directories[-1]) if directories else Path(".")
    return Invocation(
        Path(config) if config is not None else None,
        _profile(profile, snakemake),
        snakemake,
        configs,
        directory,
    )


@contextmanager
def _same_working_directory():
    """Undo a chdir inside the block (check.main changes into --directory)."""
    before = Path.cwd()
    try:
        yield
    finally:
        os.chdir(before)


def check_configs(configs: list[Path], directory: Path) -> None:
    """``trainmap check`` on each file (relative data paths resolve against ``directory``);
    its messages are printed as they are."""
    for path in configs:
        if not path.is_file():
            raise RunError(f"{path}: no such config file")
    directory.mkdir(parents=True, exist_ok=True)
    absolute = [str(p.absolute()) for p in configs]
    with _same_working_directory():
        status = check.main([*absolute, "--directory", str(directory)])
    if status != 0:
        raise RunError(
            f"{', '.join(map(str, configs))}: not a valid config (the problems above, as "
            "trainmap check prints them); nothing was run"
        )


def _identity(configs: list[Path], shown: str) -> dict:
    """What results/.trainmap-run.json records: the files (absolute) and their content."""
    digest = hashlib.sha256()
    for path in configs:
        digest.update(path.read_bytes())
    return {
        "config": shown,
        "configs": [str(p.absolute()) for p in configs],
        "sha256": digest.hexdigest(),
    }


def _defined_settings(configs: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in configs:
        try:
            settings = load_located(path).data.get("settings")
        except ConfigError:
            continue  # check_configs has refused it already
        names |= set(settings) if isinstance(settings, dict) else set()
    return names


def setting_folders(directory: Path) -> list[str]:
    """Names of the settings that have results in ``directory``/results."""
    results = directory / "results"
    folders = results.iterdir() if results.is_dir() else []
    return sorted(
        p.name
        for p in folders
        if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_SETTINGS
    )


def check_results_belong(configs: list[Path], directory: Path, shown: str) -> None:
    """Refuse a working directory whose results/ holds another config's results."""
    present = setting_folders(directory)
    if not present:
        return
    where = "results/" if directory == Path(".") else f"{directory / 'results'}/"
    record = directory / RECORD
    if record.is_file():
        try:
            recorded = read_json(record)
            recorded_configs, digest = recorded["configs"], recorded["sha256"]
        except (CorruptFileError, KeyError, TypeError) as error:
            raise RunError(f"{record}: not a record of trainmap run ({error}): remove it") from None
        mine = _identity(configs, shown)
        if recorded_configs == mine["configs"] or digest == mine["sha256"]:
            return  # the same file (edited: Snakemake reruns what changed), or a copy
        raise RunError(
            f"{where} holds the results of {recorded.get('config', recorded_configs)} (its "
            f"{', '.join(present)}; recorded in {record}), not of {shown}: run {shown} in "
            f"another folder, or remove {where} first"
        )
    foreign = sorted(set(present) - _defined_settings(configs))
    if foreign:
        raise RunError(
            f"{where} holds results of settings that {shown} does not define "
            f"({', '.join(foreign)}): the results of another config? Run {shown} in "
            f"another folder, or remove {where} first"
        )


def snakemake_argv(invocation: Invocation) -> list[str]:
    """Snakemake's command line: the user's arguments first, as given (a target would
    otherwise be swallowed by --configfile, which takes several values), then the
    packaged Snakefile, the profile and CONFIG."""
    argv = [sys.executable, "-m", "snakemake", *invocation.snakemake]
    argv += ["--snakefile", str(workflow_dir() / "Snakefile")]
    if invocation.profile is not None:
        argv += ["--workflow-profile", str(invocation.profile)]
    if invocation.config is not None:
        argv += ["--configfile", str(invocation.config.absolute())]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE.format(profiles=", ".join(packaged_profiles()), default=DEFAULT_PROFILE))
        return 0
    try:
        invocation = parse(argv)
        configs = invocation.configs or [workflow_dir() / "config" / "config.yaml"]
        shown = " ".join(map(str, invocation.configs or ["the default config"]))
        check_configs(configs, invocation.directory)
        check_results_belong(configs, invocation.directory, shown)
    except RunError as error:
        print(f"trainmap run: {error}", file=sys.stderr)
        return 1
    process = subprocess.Popen(snakemake_argv(invocation))
    try:
        status = process.wait()
    except KeyboardInterrupt:  # Snakemake got the Ctrl-C too: let it cancel its jobs
        status = process.wait()
    if setting_folders(invocation.directory):  # these results are now this config's
        write_json(_identity(configs, shown), invocation.directory / RECORD)
    return status
