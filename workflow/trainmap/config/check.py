"""``trainmap check CONFIG [CONFIG ...]``: validate config files without running anything.

Each file is read with the line-keeping loader (syntax errors and keys given twice are
refused there), then validated as the workflow validates it (schema, task keys, data
files, the predicted validation split), and every ``source: table`` file and ``source:
runs`` folder is read and prepared as the workflow's jobs would read it
(trainmap.config.data_check; the jobs' warnings are shown as warnings). Every problem is
printed as ``file:line: what`` (the line of the key the problem is about), not only the
first; the exit status is 0 when every file is valid, 1 otherwise.
"""

import argparse
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

from trainmap.config.data_check import data_problems
from trainmap.config.loader import Located, load_located
from trainmap.config.settings import EMPTY_CONFIG, Setting, schema_problems, validate_config
from trainmap.config.snakefile import workflow_settings
from trainmap.errors import ConfigError
from trainmap.io.stale import orphan_resume_states

# A message that starts with a key path: `settings.parity.lr: ...`
KEY_PATH = re.compile(r"^([A-Za-z0-9_.\-]+): ")
# Keys whose removal would only produce follow-up errors about the same setting.
KEEP_KEYS = {"source", "task", "seeds", "convergence", "table", "hub", "checkpoints"}
MAX_PROBLEMS_PER_SETTING = 20


def key_path(message: str) -> tuple[str, ...]:
    """The key path a message is about (``("settings", "parity", "lr")``), or ()."""
    match = KEY_PATH.match(message)
    return tuple(match.group(1).split(".")) if match else ()


def _setting_problems(name: str, config: dict) -> tuple[list[str], Setting | None]:
    """Every problem of one setting: after each, the key it names is left out and the
    setting validated again, so that two typos give two lines."""
    entry = dict(config["settings"][name])
    problems: list[str] = []
    while len(problems) < MAX_PROBLEMS_PER_SETTING:
        try:
            settings = workflow_settings({**config, "settings": {name: entry}})
            return problems, settings[name]
        except ConfigError as error:
            message = str(error).removeprefix("invalid config:\n  ")
            problems.extend(message.split("\n  "))
            path = key_path(message)
            key = path[2] if len(path) >= 3 and path[:2] == ("settings", name) else None
            if key is None or key not in entry or key in KEEP_KEYS:
                return problems, None
            del entry[key]
    return problems, None


def config_problems(config: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a loaded config, each ``key.path: what``."""
    if not config:
        return [EMPTY_CONFIG], []
    problems = schema_problems(config)
    names = sorted(config.get("settings") or {}) if isinstance(config.get("settings"), dict) else []
    outside = [p for p in problems if key_path(p)[:2] not in {("settings", n) for n in names}]
    if outside:  # a broken top-level block (hmm:, detours:) breaks every setting
        return problems, []
    broken = {key_path(p)[1] for p in problems}
    caught: list[warnings.WarningMessage] = []
    notes: list[str] = []
    for name in names:
        if name in broken:
            continue
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always")
            found_problems, setting = _setting_problems(name, config)
            problems += found_problems
            if setting is not None and not found_problems:  # a key left out: no data check
                data, data_notes = data_problems(setting)
                problems += data
                notes += data_notes
        caught += found
    # one line each: a problem outside a setting (a NaN elsewhere) shows up in every pass
    found_warnings = [str(w.message) for w in caught] + notes
    return list(dict.fromkeys(problems)), list(dict.fromkeys(found_warnings))


def check_file(path: str | Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one config file, each ``file:line: what``."""
    try:
        located = load_located(path)
    except ConfigError as error:
        return [str(error)], []
    problems, notes = config_problems(located.data)
    return _locate(located, problems), _locate(located, notes)


def _locate(located: Located, messages: list[str]) -> list[str]:
    return [f"{located.path}:{located.line_of(key_path(m))}: {m}" for m in messages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trainmap check",
        description="Validate trainmap config files without running anything: every "
        "problem as file:line: what; exit status 0 when all are valid.",
    )
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="config files (YAML)")
    parser.add_argument(
        "--directory",
        "-d",
        default=".",
        help="the directory the workflow will run in (snakemake --directory): relative "
        "data paths in the config resolve against it (default: the current one)",
    )
    args = parser.parse_args(argv)
    paths = [Path(c).absolute() for c in args.configs]
    os.chdir(args.directory)
    failed = False
    for path in paths:
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        problems, notes = check_file(shown)
        for note in notes:
            print(note.replace(": ", ": warning: ", 1), file=sys.stderr)
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            print(f"{shown}: valid")
    return 1 if failed else 0


def clean_resume(argv: list[str] | None = None) -> int:
    """``trainmap clean-resume CONFIG``: remove the resumable states of seeds that left
    the config (``make clean-resume``); ``--dry-run`` only lists them."""
    parser = argparse.ArgumentParser(
        prog="trainmap clean-resume",
        description="Remove results/<setting>/runs/.resume-seed<seed>/ of seeds (or settings) "
        "that are no longer in CONFIG.",
    )
    parser.add_argument("config", metavar="CONFIG")
    parser.add_argument("--directory", "-d", default=".", help="the workflow's directory")
    parser.add_argument("--dry-run", "-n", action="store_true", help="only list them")
    args = parser.parse_args(argv)
    config = Path(args.config).absolute()
    os.chdir(args.directory)
    try:
        settings = validate_config(load_located(config).data, predict_split=False)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    orphans = orphan_resume_states("results", {n: s.seeds for n, s in settings.items()})
    for folder in orphans:
        if not args.dry_run:
            shutil.rmtree(folder)
        print(f"{'would remove' if args.dry_run else 'removed'} {folder}")
    if not orphans:
        print("no resumable states of seeds outside the config")
    return 0


if __name__ == "__main__":
    sys.exit(main())
