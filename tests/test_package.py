"""The package as pip installs it (README "Install"): a lean core, the workflow inside it.

- The wheel carries the workflow's files (setup.py's WORKFLOW_PATHS, whole folders) and
  requires only what trainmap.record needs; installed outside the checkout, its own
  Snakefile runs (a dry run of the default config through ``trainmap run``).
- ``import trainmap.record`` imports none of the workflow's libraries, and its callbacks
  none beyond their framework's own; without the framework they name the extra.
- The console script names the [workflow] extra when the workflow's libraries are missing.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import Requirement

# What `import trainmap.record` must not bring into a training process.
WORKFLOW_MODULES = {"snakemake", "matplotlib", "plotly", "hmmlearn", "sklearn", "statsmodels",
                    "networkx", "jsonschema", "yaml", "datasets", "torchvision",
                    "transformers", "lightning"}  # fmt: skip
# Not copied to build the wheel: tool folders and outputs.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "results", "logs", ".snakemake", "build",
                                    "dist", "benchmarks", "__pycache__", "*.egg-info",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis")  # fmt: skip


def workflow_paths() -> list[str]:
    """setup.py's WORKFLOW_PATHS, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "WORKFLOW_PATHS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no WORKFLOW_PATHS")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout (a build writes build/ and egg-info)."""
    source = tmp_path_factory.mktemp("source") / "trainmap"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = source / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(dist), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (built,) = dist.glob("trainmap-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed (without dependencies) into a folder outside the checkout."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    return target


def test_the_wheel_ships_every_workflow_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for path in workflow_paths():
        source = REPO / path
        files = [source] if source.is_file() else source.rglob("*")
        expected |= {
            f"trainmap/_workflow/{f.relative_to(REPO)}"
            for f in files
            if f.is_file() and "__pycache__" not in f.parts
        }
    assert {"trainmap/_workflow/Snakefile", "trainmap/_workflow/config/config.yaml"} <= expected
    assert any(n.startswith("trainmap/_workflow/workflow/scripts/") for n in expected)
    assert expected == {n for n in names if n.startswith("trainmap/_workflow/")}
    assert not [n for n in names if n.startswith(("tests/", "bench/", "examples/"))]


def test_the_sdist_carries_what_the_wheel_copies():
    """MANIFEST.in names setup.py's WORKFLOW_PATHS (a wheel built from the sdist needs them)."""
    named = set()
    for line in (REPO / "MANIFEST.in").read_text().splitlines():
        words = line.split("#")[0].split()
        if words and words[0] in ("include", "graft"):
            named |= {w for w in words[1:] if "*" not in w}
    assert named == set(workflow_paths())


def test_the_wheel_requires_only_what_the_recorder_needs(wheel):
    with zipfile.ZipFile(wheel) as archive:
        info = {n.split("/")[-1]: archive.read(n).decode() for n in archive.namelist()
                if ".dist-info/" in n}  # fmt: skip
    requires = [Requirement(line.split(":", 1)[1]) for line in info["METADATA"].splitlines()
                if line.startswith("Requires-Dist:")]  # fmt: skip
    core = {r.name for r in requires if r.marker is None}
    assert core == {"torch", "numpy", "pandas", "pyarrow", "scipy", "threadpoolctl"}
    extras = {str(r.marker).split('"')[1] for r in requires if r.marker is not None}
    assert extras == {"workflow", "hf", "lightning", "test"}
    assert "trainmap = trainmap.cli:main" in info["entry_points.txt"]


def run_python(code: str, *, path: Path | None = None, cwd: Path | None = None):
    """``code`` in a fresh interpreter; ``path`` first on its sys.path (an install)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)  # fmt: skip


def test_the_installed_wheel_runs_its_own_workflow(installed, tmp_path):
    """Outside the checkout, `trainmap run` finds the packaged Snakefile, schema and
    profile; a dry run of the default config plans the demo's jobs in the empty cwd."""
    where = run_python(
        "from trainmap.workflow_dir import workflow_dir; import trainmap.config.settings as s; "
        "print(workflow_dir()); print(s.SCHEMA_PATH)",
        path=installed,
    )
    assert where.returncode == 0, where.stderr
    packaged = installed / "trainmap" / "_workflow"
    assert where.stdout.split() == [
        str(packaged),
        str(packaged / "workflow/schemas/config.schema.yaml"),
    ]
    dry = run_python(
        "import sys; from trainmap.cli import main; sys.exit(main(['run', '-n', '--cores', '1']))",
        path=installed,
        cwd=tmp_path,
    )
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-3000:]
    assert f"{packaged}/config/config.yaml: valid" in dry.stdout
    assert f"profile {packaged}/profiles/workstation" in dry.stdout + dry.stderr
    assert "rule train_run:" in dry.stdout + dry.stderr
    assert [p.name for p in tmp_path.iterdir()] == [".snakemake"]  # a dry run: no results


def imported_modules(*steps: str) -> list[set[str]]:
    """Top-level names of the modules in sys.modules after each step, run in turn in one
    fresh interpreter."""
    listing = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = run_python("\n".join(["import json, sys", *(f"{s}\n{listing}" for s in steps)]))
    assert done.returncode == 0, done.stderr
    return [set(json.loads(line)) for line in done.stdout.splitlines()[-len(steps) :]]


def test_importing_the_recorder_imports_nothing_of_the_workflow():
    (modules,) = imported_modules("import trainmap.record\ntrainmap.record.Recorder")
    assert {"torch", "pandas", "trainmap"} <= modules
    assert not modules & WORKFLOW_MODULES, sorted(modules & WORKFLOW_MODULES)


@pytest.mark.parametrize(
    ("callback", "framework"),
    [("HFCallback", "from transformers import TrainerCallback"),
     ("LightningCallback", "from lightning.pytorch import Callback")],
)  # fmt: skip
def test_a_callback_imports_nothing_beyond_its_framework(callback, framework):
    """The framework may import what it likes (Lightning imports matplotlib when it is
    installed); the callback adds no module of its own on top."""
    pytest.importorskip(framework.split()[1].split(".")[0])
    alone, with_callback = imported_modules(
        f"import trainmap.record\n{framework}", f"from trainmap.record import {callback}"
    )
    assert with_callback - alone == set()


@pytest.mark.parametrize(
    ("callback", "library", "extra"),
    [("HFCallback", "transformers", "hf"), ("LightningCallback", "lightning", "lightning")],
)
def test_a_callback_without_its_library_names_the_extra(callback, library, extra):
    done = run_python(
        f"import sys; sys.modules[{library!r}] = None  # as if not installed\n"
        "from trainmap.record import Recorder\n"
        f"from trainmap.record import {callback}"
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ")
    assert f"trainmap.record.{callback} needs {library}" in last
    assert f"pip install 'trainmap[{extra}]'" in last


def test_the_console_script_without_the_workflow_names_the_extra(tmp_path):
    done = run_python(
        "import sys; sys.modules['yaml'] = None  # as after `pip install trainmap`\n"
        "from trainmap.cli import main\nsys.exit(main(['check', 'c.yaml']))",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "trainmap check needs the workflow, whose yaml is not installed: " in done.stderr
    assert "pip install 'trainmap[workflow]'" in done.stderr
