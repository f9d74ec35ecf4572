"""A Recorder's live map (``Recorder(..., live="results/parity")``, docs/live.md).

Each logged row is filtered on the map (``trainmap.live.livemap``) and gets three more
columns: ``state`` (the most likely state now), ``p_detour`` (P(detour or dead end)) and
``predicted_convergence_step``. One line is logged when the most likely state changes or
``p_detour`` crosses ``threshold``; ``on_state(prediction)``, if given, is called after
every row, and a true return value asks the training to stop (``Recorder.stop_requested``;
the callbacks stop their Trainer).
"""

import logging
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainmap.errors import RecordError
from trainmap.live.livemap import LiveMap, Prediction, changes, describe

log = logging.getLogger(__name__)

LIVE_COLUMNS = ("state", "p_detour", "predicted_convergence_step")
OnState = Callable[[Prediction], Any]


def load_live(live: "str | Path | LiveMap | None", on_state: OnState | None, threshold: float):
    """The LiveMap of ``live`` (a results directory, its live.json or a LiveMap), None for
    none; every argument checked now, before training starts."""
    if on_state is not None and not callable(on_state):
        raise RecordError(f"on_state must be a function of the prediction, got {on_state!r}")
    if live is None:
        if on_state is not None:
            raise RecordError("on_state= needs live= (the map whose states it is told about)")
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise RecordError(f"live_threshold must be a probability, got {threshold!r}")
    if not 0 < threshold < 1:
        raise RecordError(f"live_threshold must be between 0 and 1, got {threshold}")
    return live if isinstance(live, LiveMap) else LiveMap.load(live)


class LiveHook:
    """One Recorder's run on its live map."""

    def __init__(self, live_map: LiveMap, seed: int, on_state: OnState | None, threshold: float,
                 where: str):  # fmt: skip
        self.run = live_map.run(seed)
        self.kinds = live_map.kinds
        self.on_state = on_state
        self.threshold = float(threshold)
        self.where = where
        self.stop_requested = False

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Rows a resumed run logged before (no log lines, no on_state): the filter then
        goes on from where the run is."""
        for row in rows:
            self.run.update(int(row["step"]), row)

    def update(self, step: int, row: dict[str, Any]) -> dict[str, Any]:
        """The live columns of the row at ``step``; logs and calls ``on_state``."""
        before = self.run.last
        prediction = self.run.update(step, row)
        for line in changes(before, prediction, self.threshold):
            log.info("%s step %d: %s; %s", self.where, step, line,
                     describe(prediction, self.kinds))  # fmt: skip
        if self.on_state is not None and self.on_state(prediction):
            if not self.stop_requested:
                log.info("%s step %d: on_state asked to stop", self.where, step)
            self.stop_requested = True
        return prediction.columns()
