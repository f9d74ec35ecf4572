"""``Recorder``: the 14 weight metrics of a model in the user's own training loop.

One row per ``log(step, **scalars)``: ``seed, step``, the scalars given, the 14 metrics of
METHOD.md section 2 and ``diverged``, in ``<directory>/seed<seed>/metrics.parquet`` (the
layout ``source: runs`` reads). Beside it, ``weights.json`` names the family and the
parameters each metric group read.

- Metrics are computed under ``torch.no_grad()`` on the model's own device, from the
  parameters as they are (``trainmap.metrics.weights.compute_metrics`` copies into float64): the
  model, its RNG streams and the optimizer are never touched, so training with and
  without a Recorder gives the same weights bit for bit.
- Rows reach disk at every ``log`` during the first ``EARLY_WRITES_S`` seconds (a job
  killed early keeps what it logged), then whenever ``flush_every`` seconds have passed
  since the last write, and at ``close()``; each write replaces the whole file atomically
  (temporary file + rename), so a killed process leaves a valid file with every row up to
  the last write.
- One live writer per seed folder: a second Recorder of the same folder is refused while
  the first one's process runs (``trainmap.record.lock``: a lock file with pid and host;
  a stale one is taken over).
- A Recorder opened where rows exist (a resumed job) keeps the rows before its first
  logged step and replaces the rest, so a job killed and resumed from its own checkpoint
  ends with one row per step. When that drops rows of later steps (a restart at step 0
  over a finished run) it logs a warning with how many.
- ``log(step, probe_losses=...)``: the model's loss on each example of a fixed probe set
  (the same examples, in the same order, at every call and for every seed): they go to
  ``probe_losses.parquet`` beside the metrics (``seed, step, probe_00..``, as
  trainmap.io.columns.probe_columns names them), which ``source: runs`` with ``probe:``
  maps into function space (rule map_function_space).
- ``diverged`` is True from the first row at which a given loss (any scalar with ``loss``
  in its name) that *was* finite is NaN or infinite (trainmap.io.divergence); a loss that
  is non-finite before its first finite value is "not logged yet" (a ``nan`` placeholder
  at step 0), not divergence. The first diverged row logs one warning.
- ``live="results/<setting>"``: every row is also placed on that fitted map
  (trainmap.record.live, docs/live.md): columns ``state``, ``p_detour`` and
  ``predicted_convergence_step``, a log line when the state changes or ``p_detour``
  crosses ``live_threshold``, and ``on_state(prediction)`` after every row. The map is
  read when the Recorder is made; features the run does not log fail the first ``log``.
"""

import logging
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
from trainmap.io.columns import METRIC_COLUMNS, PROBE_FILE, probe_columns
from trainmap.io.divergence import DivergenceWatch, loss_columns
from trainmap.io.files import read_parquet, write_json, write_parquet
from trainmap.metrics.weights import compute_metrics
from trainmap.record.live import LIVE_COLUMNS, LiveHook, OnState, load_live
from trainmap.record.lock import SeedLock
from trainmap.record.selection import Selection, select_weights

log = logging.getLogger(__name__)

# Seconds after the Recorder is made during which every log() is written at once: a job
# killed in its first minute (a bad config, a preempted node) keeps every row it logged.
EARLY_WRITES_S = 60.0

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


def _losses(value: Any, n: int | None) -> np.ndarray:
    """Per-example probe losses as a float64 vector (a 1-d tensor, array or list of numbers),
    as long as the first call's (n)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        losses = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RecordError(f"log(): probe_losses is not a vector of numbers: {error}") from error
    if losses.ndim != 1 or len(losses) < 2:
        raise RecordError(
            f"log(): probe_losses must be a 1-d vector of 2 or more per-example losses, "
            f"got shape {losses.shape}"
        )
    if n is not None and len(losses) != n:
        raise RecordError(
            f"log(): probe_losses has {len(losses)} values, earlier calls {n}: the probe set "
            "must be the same examples at every call"
        )
    return losses


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
    between writes of the rows once the first ``EARLY_WRITES_S`` seconds (every ``log``
    written) have passed (0: at every ``log``). live: a fitted map's results directory
    (``results/<setting>``, with its ``live.json``) or a ``trainmap.live.LiveMap``;
    on_state: a function called with the ``Prediction`` after every row (a true return
    value sets ``stop_requested``); live_threshold: the P(detour or dead end) whose
    crossing is logged.
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
        live: Any = None,
        on_state: OnState | None = None,
        live_threshold: float = 0.5,
    ):
        self.seed = _integer(seed, "seed")
        if not isinstance(flush_every, numbers.Real) or not flush_every >= 0:
            raise RecordError(f"flush_every must be a number of seconds >= 0, got {flush_every!r}")
        live_map = load_live(live, on_state, live_threshold)
        self.model = model
        self.selection: Selection = select_weights(model, family, matrices, biases)
        self.flush_every = float(flush_every)
        self.path = Path(directory) / f"seed{self.seed}" / "metrics.parquet"
        self.probe_path = self.path.with_name(PROBE_FILE)
        self._earlier = self._read_earlier_rows()
        self._earlier_probe = self._read_earlier_probe()
        self._probe: list[tuple[int, np.ndarray]] = []  # (step, losses) of this process
        self._rows: list[dict[str, Any]] = []
        self._last_step: int | None = None
        self._watch = DivergenceWatch()
        self._placeholders: set[str] = set()  # losses seen non-finite before any finite value
        self._pending = False  # rows logged since the last write
        self._started = self._last_write = time.monotonic()
        self._live = None
        if live_map is not None:
            self._live = LiveHook(live_map, self.seed, on_state, live_threshold, str(self.path))
        self.closed = False
        self._lock = SeedLock.acquire(self.path.parent)  # last: nothing above can fail after
        if not self.selection.names.get("biases"):
            log.info(
                "%s: the model has no biases: mean_b, median_b, var_b are NaN in every row "
                "(not divergence; the workflow's default features leave them out)",
                self.path,
            )

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

    def _read_earlier_probe(self) -> pd.DataFrame | None:
        """Probe losses a previous process wrote for this seed, or None."""
        if not self.probe_path.exists():
            return None
        try:
            return read_parquet(self.probe_path)
        except CorruptFileError as error:
            raise RecordError(f"{error} (or pass another directory)") from error

    def log(self, step: int, probe_losses: Any = None, **scalars: Any) -> dict[str, Any]:
        """Record one row: ``step``, the scalars, the 14 metrics now, ``diverged``.

        step: an int, larger than the previous call's. scalars: numbers (Python, NumPy,
        0-d tensors). probe_losses: optional, the loss on each probe example (a 1-d tensor,
        array or list; the same length at every call). Returns the row.
        """
        if self.closed:
            raise RecordError(f"{self.path}: log() after close()")
        step = _integer(step, "step")
        if self._last_step is not None and step <= self._last_step:
            raise RecordError(
                f"log(): step {step} after step {self._last_step}; steps must increase"
            )
        values = {name: _scalar(name, value) for name, value in scalars.items()}
        if self._live is not None:
            taken = sorted(set(values) & set(LIVE_COLUMNS))
            if taken:
                raise RecordError(f"log(): {', '.join(taken)} are columns a live Recorder "
                                  "writes itself; give the scalars other names")  # fmt: skip
        if probe_losses is not None:
            losses = _losses(probe_losses, self._probe_width())
        if self._last_step is None and self._earlier is not None:
            self._resume_at(step)
        if self._last_step is None and self._earlier_probe is not None:
            self._earlier_probe = self._earlier_probe[self._earlier_probe["step"] < step]
        if probe_losses is not None:
            self._probe.append((step, losses))
        self._watch_losses(step, {name: values[name] for name in loss_columns(values)})
        metrics = compute_metrics(self.selection.groups(self.model))
        row = {"seed": self.seed, "step": step, **values, **metrics,
               "diverged": self._watch.diverged}  # fmt: skip
        if self._live is not None:
            if self._last_step is None and self._earlier is not None:
                self._live.replay(self._earlier.to_dict("records"))
            row.update(self._live.update(step, row))
        self._rows.append(row)
        self._last_step = step
        self._pending = True
        now = time.monotonic()
        early = now - self._started < EARLY_WRITES_S
        if early or now - self._last_write >= self.flush_every:
            self.flush()
        return row

    @property
    def live_state(self):
        """The live map's ``Prediction`` for the last row (None without ``live=``)."""
        return None if self._live is None else self._live.run.last

    @property
    def stop_requested(self) -> bool:
        """``on_state`` returned a true value for some row: the run should stop."""
        return self._live is not None and self._live.stop_requested

    def _resume_at(self, step: int) -> None:
        """The first step of a resumed run: the earlier rows from it on are being redone
        (a warning when that drops rows of later steps); divergence carries over."""
        earlier = self._earlier
        dropped = earlier[earlier["step"] > step]
        if len(dropped):
            log.warning(
                "%s: this run starts at step %d, before %d logged row(s) of steps %d..%d: "
                "the rows from step %d on are replaced (a job resumed from an earlier "
                "checkpoint logs them again; to keep an old run, record the new one into "
                "another directory or seed)",
                self.path, step, len(dropped), int(dropped["step"].min()),
                int(dropped["step"].max()), step,
            )  # fmt: skip
        self._earlier = earlier[earlier["step"] < step]
        self._watch = DivergenceWatch.resumed(self._earlier)

    def _watch_losses(self, step: int, losses: dict[str, float]) -> None:
        """Apply the divergence rule to this row's losses; say so once when it fires, and
        once per loss that is non-finite before its first finite value."""
        turned = self._watch.update(losses)
        if turned:
            log.warning(
                "%s: %s turned non-finite at step %d after finite values: rows from step %d "
                "are marked diverged (the HMM leaves this run out)",
                self.path, ", ".join(turned), step, step,
            )  # fmt: skip
        waiting = {n for n, v in losses.items() if not math.isfinite(v)} - self._watch.seen
        for name in sorted(waiting - self._placeholders):
            log.info("%s: %s is non-finite at step %d before any finite value: read as not "
                     "logged yet, not as divergence", self.path, name, step)  # fmt: skip
        self._placeholders |= waiting

    def table(self) -> pd.DataFrame:
        """Every row of the run so far (earlier ones kept from a previous process too)."""
        new = pd.DataFrame(self._rows)
        if self._earlier is None or self._earlier.empty:
            table = new
        elif new.empty:
            table = self._earlier
        else:
            table = pd.concat([self._earlier, new], ignore_index=True)
        live = [c for c in LIVE_COLUMNS if c in table.columns]
        scalars = [c for c in table.columns if c not in RESERVED and c not in live]
        ordered = ["seed", "step", *scalars, *METRIC_COLUMNS, "diverged", *live]
        return table.reindex(columns=ordered).reset_index(drop=True)

    def _probe_width(self) -> int | None:
        """Probe examples of the earlier calls (this process's, or a resumed run's file)."""
        if self._probe:
            return len(self._probe[0][1])
        if self._earlier_probe is not None and len(self._earlier_probe):
            return sum(c.startswith("probe_") for c in self._earlier_probe.columns)
        return None

    def probe_table(self) -> pd.DataFrame | None:
        """``seed, step, probe_00..`` of every call that gave probe losses; None if none."""
        parts = [] if self._earlier_probe is None else [self._earlier_probe]
        if self._probe:
            steps, rows = zip(*self._probe, strict=True)
            new = pd.DataFrame(np.stack(rows), columns=probe_columns(len(rows[0])))
            new.insert(0, "step", np.asarray(steps, dtype=np.int64))
            new.insert(0, "seed", self.seed)
            parts.append(new)
        parts = [part for part in parts if len(part)]
        return pd.concat(parts, ignore_index=True) if parts else None

    def flush(self) -> None:
        """Write every row now (atomically), the probe losses and the weight selection
        beside them."""
        if not self._pending:
            return
        self._lock.check()
        probe = self.probe_table()
        if probe is not None:
            write_parquet(probe, self.probe_path)
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
            try:
                self.flush()
            finally:
                self.closed = True
                self._lock.release()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()  # also when training raised: the rows so far are kept
