"""Checks over the package's source: no pickle is ever loaded, every output is atomic."""

import ast
import importlib.util
from pathlib import Path

import pytest
from conftest import REPO

SOURCES = sorted((REPO / "workflow").rglob("*.py"))
# Loading these runs code from the file: parameters are data (STYLE.md), never pickles.
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve"}
# Calls that write a file: the file must be the temporary path of `atomic_path`.
WRITER_METHODS = {"to_parquet", "to_csv", "to_json", "savefig", "write_text", "write_bytes"}
# Writer function -> position of its file argument.
WRITER_FUNCTIONS = {"save_file": 1, "torch.save": 1, "np.save": 0, "np.savez": 0, "json.dump": 1}


def dotted(node: ast.AST) -> str:
    """'torch.load' for the call target torch.load, '' for anything not a plain name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def pickle_loads(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names.append(getattr(node, "module", None) or "")
            found += [f"import {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if last == "read_pickle" or name.split(".")[0] in PICKLE_MODULES:
                found.append(name)
            elif name == "torch.load" and keyword(node, "weights_only") is not True:
                found.append("torch.load without weights_only=True")
            elif last == "load" and name.startswith(("np.", "numpy.")):
                if keyword(node, "allow_pickle") is True:
                    found.append("np.load(allow_pickle=True)")
    return found


def atomic_names(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as name``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and dotted(call.func).endswith("atomic_path")
                    and isinstance(item.optional_vars, ast.Name)
                ):
                    names.add(item.optional_vars.id)
    return names


def non_atomic_writes(tree: ast.AST) -> list[str]:
    safe = atomic_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
            continue
        name = dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if last in WRITER_METHODS and isinstance(node.func, ast.Attribute):
            # path.write_text(...) writes to the receiver; frame.to_csv(path) to its argument
            target = node.func.value if last.startswith("write_") else _first(node)
        elif name in WRITER_FUNCTIONS:
            position = WRITER_FUNCTIONS[name]
            target = node.args[position] if len(node.args) > position else None
        elif name == "open" and _mode(node) and set(_mode(node)) & set("wax"):
            target = _first(node)
        else:
            continue
        if not (isinstance(target, ast.Name) and target.id in safe) and not _str_of_safe(
            target, safe
        ):
            found.append(f"line {node.lineno}: {name}")
    return found


def _first(call: ast.Call):
    return call.args[0] if call.args else None


def _mode(call: ast.Call) -> str:
    if len(call.args) > 1 and isinstance(call.args[1], ast.Constant):
        return str(call.args[1].value)
    return str(keyword(call, "mode") or "")


def _str_of_safe(node, safe: set[str]) -> bool:
    """``str(tmp)`` of an atomic temporary path."""
    return (
        isinstance(node, ast.Call)
        and dotted(node.func) == "str"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id in safe
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_pickle_is_loaded(path: Path):
    assert pickle_loads(ast.parse(path.read_text())) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_is_written_atomically(path: Path):
    assert non_atomic_writes(ast.parse(path.read_text())) == []


def test_the_scans_find_what_they_look_for():
    bad = ast.parse(
        "import pickle\n"
        "import joblib\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "np.load(p, allow_pickle=True)\n"
        "pd.read_pickle(p)\n"
        "table.to_parquet(path)\n"
        "fig.savefig(out)\n"
        "Path(p).write_text('x')\n"
        "save_file(weights, str(path))\n"
        "open(p, 'w')\n"
    )
    assert len(pickle_loads(bad)) == 6
    assert len(non_atomic_writes(bad)) == 5
    good = ast.parse(
        "torch.load(p, weights_only=True)\n"
        "np.load(p)\n"
        "with atomic_path(path) as tmp:\n"
        "    table.to_parquet(tmp)\n"
        "    save_file(weights, str(tmp))\n"
        "    tmp.write_text('x')\n"
        "open(p)\n"
    )
    assert pickle_loads(good) == [] and non_atomic_writes(good) == []


SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_import_without_snakemake(path: Path):
    """A script runs its `main` only when Snakemake runs it, so tests import and call
    `main` in-process (no `snakemake` object: importing must run nothing)."""
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # NameError on `snakemake` if main ran at import
    assert callable(module.main)


MAX_FUNCTION_LINES = 60  # functions short enough to read at once (STYLE.md)


def long_functions(root: Path) -> set[str]:
    """``module:function`` of every function (methods and nested ones too) over
    ``MAX_FUNCTION_LINES`` lines, decorators aside, under ``root``."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"{path.relative_to(root)}:{node.name}")
    return found


def test_no_function_in_the_package_is_over_60_lines(tmp_path):
    assert long_functions(REPO / "workflow" / "trainmap") == set()
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert long_functions(tmp_path) == {"m.py:f"}  # the scan finds one
