"""One row gathered from a framework's events before it is logged (the callbacks' core).

A framework reports a step's values in several events (the step ends, then its training
loss is logged, then an evaluation runs), all before the next optimizer step changes the
weights. ``PendingRow`` collects them and logs the row once, at the next step's start or
at the end of training, so every row has the weights of its step and all its values.
"""

import numbers
from pathlib import Path
from typing import Any

from trainmap.errors import RecordError
from trainmap.record.live import load_live
from trainmap.record.recorder import Recorder

# Logged values that describe the run's speed, not its state: never recorded.
SPEED_WORDS = ("runtime", "per_second", "flos")


def numeric_scalars(values: dict[str, Any]) -> dict[str, float]:
    """The numbers among a framework's logged values (0-d tensors included), speed left out."""
    out = {}
    for name, value in values.items():
        if any(word in name for word in SPEED_WORDS):
            continue
        if hasattr(value, "ndim") and hasattr(value, "item"):
            if value.ndim != 0:
                continue
            value = value.item()
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[name] = float(value) if not isinstance(value, numbers.Integral) else value
    return out


class PendingRow:
    """The row of one step while its values arrive; ``commit`` logs it to the Recorder."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.scalars: dict[str, float] = {}
        self.last_logged: tuple[int, dict[str, float]] | None = None

    def add(self, step: int, **scalars: float) -> None:
        if self.step is not None and step != self.step:
            raise RuntimeError(f"values of step {step} arrived before step {self.step} was logged")
        self.step = step
        self.scalars.update(scalars)

    def commit(self, recorder: Recorder) -> None:
        if self.step is None:
            return
        recorder.log(self.step, **self.scalars)
        self.last_logged = (self.step, dict(self.scalars))
        self.step, self.scalars = None, {}

    def redo_last(self, recorder_factory, **scalars: float) -> None:
        """Values of the last logged step that came after training ended (an evaluation
        after ``train()``): the row is written again with them (the Recorder's restart
        rule replaces it; the weights are those of that step)."""
        step, earlier = self.last_logged
        merged = {**earlier, **scalars}
        with recorder_factory() as recorder:
            recorder.log(step, **merged)
        self.last_logged = (step, merged)


def check_interval(value: int | None, what: str) -> None:
    """A callback's step interval: None (off) or an integer >= 1; else RecordError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise RecordError(f"{what} must be an integer >= 1, got {value!r}")


class RecordingCallback:
    """What the framework callbacks share: where to record, the Recorder's options, the
    Recorder once training starts (main process only) and the row being gathered."""

    def __init__(self, directory: str | Path, seed: int | None, **recorder_options):
        self.directory = directory
        self.seed = seed
        # family, matrices, biases, flush_every, live, on_state, live_threshold; the live
        # map is read now, so a bad one fails when the callback is made, not at training
        options = dict(recorder_options)
        options["live"] = load_live(
            options.get("live"), options.get("on_state"), options.get("live_threshold", 0.5)
        )
        self.options = options
        self.recorder: Recorder | None = None
        self.row = PendingRow()

    def stop_requested(self) -> bool:
        """The live map's ``on_state`` asked the training to stop."""
        return self.recorder is not None and self.recorder.stop_requested

    def finish(self) -> None:
        """At the end of training: log the gathered row and write everything."""
        if self.recorder is not None:
            self.row.commit(self.recorder)
            self.recorder.close()
            self.recorder = None
