"""File IO at the edges: Parquet, JSON and CSV files, written atomically, read with errors
that name the file (``log_to_file`` lives in ``trainmap.io.logs``), and ``plain``, the one
conversion of NumPy values to what JSON (and a message) shows as plain Python.

Atomic writes (to a temporary name, then rename) mean a killed job never leaves a file
that looks complete.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainmap.errors import CorruptFileError
from trainmap.io.atomic import atomic_path
from trainmap.io.logs import log_to_file

__all__ = ["atomic_path", "log_to_file", "read_csv", "read_json", "read_parquet"]
__all__ += ["plain", "write_json", "write_parquet"]


def plain(value: Any) -> Any:
    """A NumPy scalar, or a list of values, as plain Python: ``np.int64(3)`` -> ``3`` (JSON
    cannot hold NumPy scalars; a message lists runs as [0, 3], not [np.int64(0), ...])."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


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
