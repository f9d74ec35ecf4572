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
"""

import ast
import hashlib
from pathlib import Path

PACKAGE = "trainmap"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    """The file of module ``trainmap.a.b`` (a module or a package's __init__)."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
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


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def local_imports(path: str | Path) -> list[Path]:
    """Every trainmap module file ``path`` reaches through imports, sorted."""
    seen: set[Path] = set()
    todo = [Path(path)]
    while todo:
        for name in _imported_modules(_parse(todo.pop())):
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
    units = set()
    for node in _substance(_parse(path)).body:
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
    for unit in sorted(set().union(*(code_units(file) for file in files))):
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
