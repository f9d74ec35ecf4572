"""The per-rule conda environments (envs/*.yaml) stay pinned, complete and in step with pip.

Every rule that runs code names an env file with ``conda:``; each file lists exact pins
from conda-forge only (``conda-forge`` + ``nodefaults``); its versions equal the lock's
(requirements/lock.txt, which tests/test_lock.py checks against the installed versions);
and it holds every third-party module that the rule's script imports, directly or through
``trainmap``.

No conda channel is reachable from CI (only PyPI and Debian's archive are), so the envs are
never solved or built here: ``--sdm conda`` cannot run in CI. These checks are what can be
verified without a solver; docs/cluster.md says how to use the envs on a cluster.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEFILE
from locks import LOCK, pins

RULE_FILES = [SNAKEFILE, *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
PACKAGE_DIR = REPO / "workflow" / "trainmap"
# conda-forge names of the PyPI distributions whose names differ, and the import names of
# distributions whose module is named differently.
CONDA_TO_PYPI = {"pytorch": "torch"}
IMPORT_TO_PYPI = {"yaml": "pyyaml", "sklearn": "scikit-learn"}
# Modules a library loads by name at run time: pandas reads and writes Parquet via pyarrow.
RUNTIME_EXTRAS = {"pandas": {"pyarrow"}}
EXACT_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(==?)([0-9][A-Za-z0-9_.+!]*)(=[A-Za-z0-9_.]+)?$")
RULE_START = re.compile(r"^(?:rule|checkpoint) (\w+):", re.MULTILINE)
DIRECTIVE = re.compile(r"^    (\w+):\s*\n\s+\"([^\"]+)\"", re.MULTILINE)
CODE_DIRECTIVES = {"script", "shell", "run", "notebook", "wrapper"}


def canonical(name: str) -> str:
    """PEP 503 name, with conda-forge's names mapped to PyPI's."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PYPI.get(name, name)


def parse_rules() -> dict[str, dict]:
    """Rules defined in the Snakefile and rule files: name -> {file, directives, paths}.

    ``directives`` names every directive of the rule; ``paths`` maps the directives whose
    value is a single string literal (conda, script, ...) to it. The files are
    snakefmt-formatted, which keeps this regular; test_rules_match_snakemake checks that no
    rule escapes it.
    """
    rules = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = list(RULE_START.finditer(text))
        for i, start in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            body = text[start.end() : end]
            body = re.split(r"^\S", body, maxsplit=1, flags=re.MULTILINE)[0]
            rules[start.group(1)] = {
                "file": path,
                "directives": set(re.findall(r"^    (\w+):", body, re.MULTILINE)),
                "paths": dict(DIRECTIVE.findall(body)),
            }
    return rules


def code_rules() -> dict[str, dict]:
    return {name: r for name, r in parse_rules().items() if r["directives"] & CODE_DIRECTIVES}


def load_env(rule: dict) -> dict:
    return yaml.safe_load((rule["file"].parent / rule["paths"]["conda"]).read_text())


def env_pins(env: dict) -> dict[str, str]:
    pins = {}
    for dependency in env["dependencies"]:
        match = EXACT_PIN.match(dependency.replace(" ", ""))
        assert match, f"{env['name']}: {dependency!r} is not pinned to one exact version"
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def _module_file(module: str) -> Path | None:
    """The file of a ``trainmap`` module, or None for anything else."""
    parts = module.split(".")
    if parts[0] != "trainmap":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imported_distributions(script: Path) -> set[str]:
    """Third-party distributions the script imports, following ``trainmap`` modules."""
    distributions: set[str] = set()
    seen: set[Path] = set()
    queue = [script]
    while queue:
        path = queue.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "trainmap":
                    # Importing a.b.c runs the __init__ of a and a.b too.
                    parts = module.split(".")
                    for depth in range(1, len(parts) + 1):
                        file = _module_file(".".join(parts[:depth]))
                        if file is not None and file.exists():
                            queue.append(file)
                elif top not in sys.stdlib_module_names and top != "snakemake":
                    distributions.add(canonical(IMPORT_TO_PYPI.get(top, top)))
    for module, extras in RUNTIME_EXTRAS.items():
        if module in distributions:
            distributions |= extras
    return distributions


def test_rules_match_snakemake(tmp_path):
    """The rule files' parser sees exactly the rules Snakemake loads."""
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--list-rules"],
        cwd=tmp_path,  # Snakemake creates .snakemake/ in its working directory
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(listed) == set(parse_rules())


def test_every_code_rule_names_an_existing_env():
    rules = code_rules()
    assert "train_run" in rules
    for name, rule in rules.items():
        assert "conda" in rule["paths"], f"rule {name} has no `conda:` env file"
        path = rule["file"].parent / rule["paths"]["conda"]
        assert path.resolve().parent == REPO / "envs", f"rule {name}: {path} not in envs/"
        assert path.is_file(), f"rule {name}: {path} does not exist"


def test_no_run_blocks_and_unpacking_needs_only_the_standard_library():
    """A `run:` block costs a whole Snakemake process per job on a workstation (the local
    executor spawns one), so there are none; the unpack rules run training/unpack.py by
    Snakemake's own interpreter, whatever env: it imports no third-party code."""
    rules = parse_rules()
    assert not {name for name, rule in rules.items() if "run" in rule["directives"]}
    for name in ("unpack_run", "unpack_probe_losses"):
        assert "shell" in rules[name]["directives"]
    for module in ("bundle.py", "unpack.py"):
        assert imported_distributions(REPO / "workflow/trainmap/training" / module) == set()


@pytest.mark.parametrize("path", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_is_pinned_to_conda_forge_and_the_lock(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    assert all(isinstance(d, str) for d in env["dependencies"]), "no pip: section"
    pinned = env_pins(env)
    python = pinned.pop("python")
    assert python.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    locked = pins(LOCK)
    for name, version in pinned.items():
        assert name in locked, f"{path.name}: {name} is not in {LOCK.name}"
        assert version == locked[name], f"{path.name}: {name}={version}, the lock {locked[name]}"


def test_every_env_holds_what_its_scripts_import():
    for name, rule in code_rules().items():
        if "script" not in rule["paths"]:
            continue
        script = rule["file"].parent / rule["paths"]["script"]
        needed = imported_distributions(script)
        missing = needed - set(env_pins(load_env(rule)))
        assert not missing, f"rule {name}: {rule['paths']['conda']} lacks {sorted(missing)}"


def test_import_scan_follows_the_package():
    """The scan sees through trainmap: train_run's script reaches torch via the package."""
    needed = imported_distributions(REPO / "workflow" / "scripts" / "train_run.py")
    assert {"torch", "pandas", "pyarrow", "safetensors"} <= needed
    assert "trainmap" not in needed and "snakemake" not in needed
