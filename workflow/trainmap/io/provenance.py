"""Which code a job runs, as a digest Snakemake can compare between runs.

Snakemake reruns a rule when its script changes, not when a package module the script
imports changes. Rules therefore pass ``code=code_digest(script)`` as a param: the digest
covers the script and every ``trainmap`` module it reaches through imports, so editing
``trainmap/metrics/weights.py`` reruns training and nothing else.

The digest is of the code's substance, not of file bytes: every top-level statement of
those files as a syntax tree, without docstrings, comments and the package's own import
lines, as a sorted set. Moving a function to another module, re-wrapping a docstring or
editing a comment reruns nothing; changing what a function does, or reaching a module
with other code, does.

Every Snakemake start digests ~20 rules' code, ~500 file visits over ~130 files. What a
file gives (the modules it imports, its units) depends on its text alone, so it is
computed once per process per text (``functools.cache``) and kept across processes in a
cache folder of JSON files named by the text's SHA-256 (``code_cache_dir``): an edited
file has another name, so a stale entry is never read, and a start after the first parses
only the files that changed. Snakemake jobs, SLURM jobs and test workers share it.
"""

import ast
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from trainmap.io.atomic import atomic_path

PACKAGE = "trainmap"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The file of module ``trainmap.a.b`` (a module or a package's __init__)."""
    return _module_file_in(PACKAGE_DIR, name)


@functools.cache  # a Snakemake start resolves each name ~20 times (once per rule's digest)
def _module_file_in(package_dir: Path, name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_package_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == PACKAGE
    if isinstance(node, ast.Import):
        return all(alias.name.split(".")[0] == PACKAGE for alias in node.names)
    return False


def _imported_modules(tree: ast.Module) -> set[str]:
    """Names of the trainmap modules a file imports (absolute imports, lazy ones too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == PACKAGE}


# Bump when what a cache entry holds changes (the units' form or the imports' rules).
CACHE_FORMAT = 1


def code_cache_dir() -> Path:
    """$TRAINMAP_CACHE_DIR, else trainmap/ in the user's cache folder ($XDG_CACHE_HOME or
    ~/.cache), in a folder per Python version (``ast.dump`` differs between versions)."""
    root = os.environ.get("TRAINMAP_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainmap"
    version = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(root) / f"code-units-{version}-v{CACHE_FORMAT}"


def _read_cached(path: Path) -> tuple[frozenset[str], frozenset[str]] | None:
    try:
        entry = json.loads(path.read_text())
        return frozenset(entry["imports"]), frozenset(entry["units"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable or cut short: parse the source again


def _write_cached(path: Path, imports: frozenset[str], units: frozenset[str]) -> None:
    entry = {"imports": sorted(imports), "units": sorted(units)}
    try:
        with atomic_path(path) as tmp:  # concurrent writers each write the same content
            tmp.write_text(json.dumps(entry))
    except OSError:
        pass  # a read-only or full cache folder only costs the next start a parse


@functools.cache
def _source_parts(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """(trainmap modules imported, code units) of one file's text: from the cache folder,
    or parsed and stored there."""
    cached = code_cache_dir() / f"{hashlib.sha256(source.encode()).hexdigest()}.json"
    parts = _read_cached(cached)
    if parts is None:
        tree = ast.parse(source)
        imports = frozenset(_imported_modules(tree))  # before _substance drops them
        parts = imports, frozenset(_units(tree))
        _write_cached(cached, *parts)
    return parts


def _file_parts(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    info = Path(path).stat()
    return _read_parts(Path(path), info.st_mtime_ns, info.st_size)


@functools.cache  # each rule's digest visits the shared modules again: read them once
def _read_parts(path: Path, mtime_ns: int, size: int) -> tuple[frozenset[str], frozenset[str]]:
    try:
        return _source_parts(path.read_text())
    except SyntaxError as error:
        error.filename = str(path)  # the text alone does not say which file it was
        raise


def local_imports(path: str | Path) -> list[Path]:
    """Every trainmap module file ``path`` reaches through imports, sorted."""
    seen: set[Path] = set()
    todo = [Path(path)]
    while todo:
        imports, _ = _file_parts(todo.pop())
        for name in sorted(imports):
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)]
            for module in parents:  # importing a.b.c runs a/__init__ and a/b/__init__ too
                file = _module_file(module)
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return sorted(seen)


def _substance(tree: ast.Module) -> ast.Module:
    """``tree`` without docstrings and without imports of the package (lazy ones too: which
    modules a file reaches is covered by their own units)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body:
            continue
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body = body[1:]
        body = [statement for statement in body if not _is_package_import(statement)]
        # a docstring-only package __init__ adds no unit; a function keeps a body
        node.body = body or ([] if isinstance(node, ast.Module) else [ast.Pass()])
    return tree


def code_units(path: Path) -> set[str]:
    """A file's top-level statements as syntax trees (no docstrings, no package imports);
    an import statement gives one unit per name, so that merging or splitting files whose
    imports overlap changes nothing."""
    return set(_file_parts(path)[1])


def _units(tree: ast.Module) -> set[str]:
    units = set()
    for node in _substance(tree).body:
        if isinstance(node, ast.ImportFrom):
            units.update(ast.dump(ast.ImportFrom(node.module, [a], node.level)) for a in node.names)
        elif isinstance(node, ast.Import):
            units.update(ast.dump(ast.Import([alias])) for alias in node.names)
        else:
            units.add(ast.dump(node))
    return units


def code_digest(script: str | Path) -> str:
    """A short digest of the code of ``script`` and of every trainmap module it imports."""
    files = [Path(script), *local_imports(script)]
    digest = hashlib.sha256()
    for unit in sorted(frozenset().union(*(_file_parts(file)[1] for file in files))):
        digest.update(unit.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """A short digest of a user's input file's content ("missing" when there is none).

    A param, so that a file replaced by new content with an old modification time
    (``cp -p``, rsync) still reruns what reads it; Snakemake alone compares only times.
    """
    try:
        return file_sha256(path)[:16]
    except FileNotFoundError:
        return "missing"  # Snakemake then reports the missing input itself
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a directory where a file is expected") from None
