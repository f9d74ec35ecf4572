"""Which code a job runs, as a digest Snakemake can compare between runs.

Snakemake reruns a rule when its script changes, not when a package module the script
imports changes. Rules therefore pass ``code=code_digest(script)`` as a param: the digest
covers the script and every ``trainmap`` module it reaches through imports, so editing
``metrics.py`` reruns training and nothing else.
"""

import ast
import hashlib
from pathlib import Path

PACKAGE = "trainmap"
PACKAGE_DIR = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The file of module ``trainmap.a.b`` (a module or a package's __init__)."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Names of the trainmap modules ``path`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == PACKAGE}


def local_imports(path: str | Path) -> list[Path]:
    """Every trainmap module file ``path`` reaches through imports, sorted."""
    seen: set[Path] = set()
    todo = [Path(path)]
    while todo:
        for name in _imported_modules(todo.pop()):
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)]
            for module in parents:  # importing a.b.c runs a/__init__ and a/b/__init__ too
                file = _module_file(module)
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return sorted(seen)


def code_digest(script: str | Path) -> str:
    """A short digest of ``script`` and every trainmap module it imports."""
    digest = hashlib.sha256()
    for file in [Path(script), *local_imports(script)]:
        digest.update(file.read_bytes())
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
