"""File IO at the edges: Parquet, JSON and CSV files, written atomically, read with errors
that name the file (``log_to_file`` lives in ``trainmap.io.logs``).

Atomic writes (to a temporary name, then rename) mean a killed job never leaves a file
that looks complete.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd

from trainmap.errors import CorruptFileError
from trainmap.io.atomic import atomic_path
from trainmap.io.logs import log_to_file

__all__ = ["atomic_path", "log_to_file", "read_csv", "read_json", "read_parquet"]
__all__ += ["write_json", "write_parquet"]


def write_parquet(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def write_json(data: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file; a truncated or corrupt one raises ``CorruptFileError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise CorruptFileError(path, f"invalid JSON ({error})") from error
    except UnicodeDecodeError as error:
        raise CorruptFileError(path, f"not UTF-8 text ({error})") from error


def read_parquet(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """A Parquet file; a truncated or corrupt one raises ``CorruptFileError`` naming it."""
    try:
        return pd.read_parquet(path, **kwargs)
    except (OSError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CorruptFileError(path, f"unreadable Parquet ({error})") from error


def read_csv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """A CSV file written by a rule; a corrupt one raises ``CorruptFileError`` naming it."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CorruptFileError(path, f"unreadable CSV ({error})") from error
