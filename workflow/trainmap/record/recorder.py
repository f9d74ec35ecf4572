"""``Recorder``: the 14 weight metrics of a model in the user's own training loop.

One row per ``log(step, **scalars)``: ``seed, step``, the scalars given, the 14 metrics of
METHOD.md section 2 and ``diverged``, in ``<directory>/seed<seed>/metrics.parquet`` (the
layout ``source: runs`` reads). Beside it, ``weights.json`` names the family and the
parameters each metric group read.

- Metrics are computed under ``torch.no_grad()`` on the model's own device, from the
  parameters as they are (``trainmap.metrics.weights.compute_metrics`` copies into float64): the
  model, its RNG streams and the optimizer are never touched, so training with and
  without a Recorder gives the same weights bit for bit.
- Rows reach disk at the first ``log``, then whenever ``flush_every`` seconds have passed
  since the last write, and at ``close()``; each write replaces the whole file atomically
  (temporary file + rename), so a killed process leaves a valid file with every row up to
  the last write.
- A Recorder opened where rows exist (a resumed job) keeps the rows before its first
  logged step and replaces the rest, so a job killed and resumed from its own checkpoint
  ends with one row per step.
- ``diverged`` is True from the first row whose given loss (any scalar with ``loss`` in
  its name) is NaN or infinite on, as a trained run marks a run that diverged.
"""

import math
import numbers
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainmap.errors import CorruptFileError, RecordError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.io.files import read_parquet, write_json, write_parquet
from trainmap.metrics.weights import compute_metrics
from trainmap.record.selection import Selection, select_weights

# Columns the Recorder writes itself; a scalar of that name would overwrite them.
RESERVED = ("setting", "seed", "run", "step", "diverged", *METRIC_COLUMNS)


def _integer(value: Any, what: str) -> int:
    """A Python, NumPy or 0-d tensor integer as int; anything else raises RecordError."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise RecordError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise RecordError(f"{what} must be >= 0, got {value}")
    return int(value)


def _scalar(name: str, value: Any) -> int | float:
    """A logged value as a Python number: Python/NumPy numbers and 0-d tensors only."""
    if name in RESERVED:
        raise RecordError(
            f"log(): {name!r} is a column the Recorder writes itself ({', '.join(RESERVED)}); "
            "give the scalar another name"
        )
    if isinstance(value, torch.Tensor | np.ndarray):
        if value.ndim != 0:
            raise RecordError(
                f"log(): {name} is a {type(value).__name__} of shape {tuple(value.shape)}, "
                f"not a scalar; pass a 0-d tensor or a number (e.g. {name}.mean().item())"
            )
        value = value.item()
    if isinstance(value, bool | np.bool_):
        raise RecordError(f"log(): {name}={value!r} is a boolean; log numbers (e.g. int(flag))")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise RecordError(
        f"log(): {name}={value!r} ({type(value).__name__}) is not a number; scalars are "
        "Python or NumPy numbers or 0-d tensors"
    )


class Recorder:
    """Records ``model``'s weight metrics at each ``log`` call (module docstring).

    directory: the run directory of the experiment; this seed's rows go to
    ``<directory>/seed<seed>/metrics.parquet``. seed: the run's seed (an int >= 0).
    model: the ``torch.nn.Module`` being trained. family, matrices, biases: which weights
    the metrics read (``trainmap.record.selection.select_weights``; checked here, so a
    selection that matches nothing fails now, not after training). flush_every: seconds
    between writes of the rows (0: at every ``log``).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        seed: int,
        model: nn.Module,
        family: str = "auto",
        matrices: list[str] | None = None,
        biases: list[str] | None = None,
        flush_every: float = 60.0,
    ):
        self.seed = _integer(seed, "seed")
        if not isinstance(flush_every, numbers.Real) or not flush_every >= 0:
            raise RecordError(f"flush_every must be a number of seconds >= 0, got {flush_every!r}")
        self.model = model
        self.selection: Selection = select_weights(model, family, matrices, biases)
        self.flush_every = float(flush_every)
        self.path = Path(directory) / f"seed{self.seed}" / "metrics.parquet"
        self._earlier = self._read_earlier_rows()
        self._rows: list[dict[str, Any]] = []
        self._last_step: int | None = None
        self._diverged = False
        self._pending = False  # rows logged since the last write
        self._last_write = time.monotonic()
        self.closed = False

    def _read_earlier_rows(self) -> pd.DataFrame | None:
        """Rows a previous process wrote for this seed (a resumed job), or None."""
        if not self.path.exists():
            return None
        try:
            table = read_parquet(self.path)
        except CorruptFileError as error:
            raise RecordError(f"{error} (or pass another directory)") from error
        for column in ("seed", "step", "diverged"):
            if column not in table.columns:
                raise RecordError(
                    f"{self.path}: not a Recorder's file (no {column!r} column); move it "
                    "away or record into another directory"
                )
        if len(table) and (table["seed"] != self.seed).any():
            raise RecordError(f"{self.path}: holds rows of another seed than {self.seed}")
        return table

    def log(self, step: int, **scalars: Any) -> dict[str, Any]:
        """Record one row: ``step``, the scalars, the 14 metrics now, ``diverged``.

        step: an int, larger than the previous call's. scalars: numbers (Python, NumPy,
        0-d tensors). Returns the row.
        """
        if self.closed:
            raise RecordError(f"{self.path}: log() after close()")
        step = _integer(step, "step")
        if self._last_step is not None and step <= self._last_step:
            raise RecordError(
                f"log(): step {step} after step {self._last_step}; steps must increase"
            )
        values = {name: _scalar(name, value) for name, value in scalars.items()}
        if self._last_step is None and self._earlier is not None:
            # The first step of a resumed run: the rows from it on are being redone.
            self._earlier = self._earlier[self._earlier["step"] < step]
            if len(self._earlier):
                self._diverged = bool(self._earlier["diverged"].iloc[-1])
        losses = [v for name, v in values.items() if "loss" in name]
        self._diverged = self._diverged or not all(math.isfinite(v) for v in losses)
        metrics = compute_metrics(self.selection.groups(self.model))
        row = {"seed": self.seed, "step": step, **values, **metrics, "diverged": self._diverged}
        self._rows.append(row)
        first = self._last_step is None
        self._last_step = step
        self._pending = True
        if first or time.monotonic() - self._last_write >= self.flush_every:
            self.flush()
        return row

    def table(self) -> pd.DataFrame:
        """Every row of the run so far (earlier ones kept from a previous process too)."""
        new = pd.DataFrame(self._rows)
        if self._earlier is None or self._earlier.empty:
            table = new
        elif new.empty:
            table = self._earlier
        else:
            table = pd.concat([self._earlier, new], ignore_index=True)
        scalars = [c for c in table.columns if c not in RESERVED]
        ordered = ["seed", "step", *scalars, *METRIC_COLUMNS, "diverged"]
        return table.reindex(columns=ordered).reset_index(drop=True)

    def flush(self) -> None:
        """Write every row now (atomically), and the weight selection beside them."""
        if not self._pending:
            return
        write_parquet(self.table(), self.path)
        write_json(
            {"family": self.selection.family, **self.selection.names},
            self.path.with_name("weights.json"),
        )
        self._pending = False
        self._last_write = time.monotonic()

    def close(self) -> None:
        """Write what is pending; later ``log`` calls are refused."""
        if not self.closed:
            self.flush()
            self.closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # also when training raised: the rows so far are kept
