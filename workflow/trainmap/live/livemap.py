"""``LiveMap`` (a map's ``live.json``) and ``LiveRun`` (one run filtered on it, online).

Everything here is NumPy and the standard library, as a training process imports it
through ``trainmap.record``. The method (docs/live.md):

- a row's features are z-scored with the map's global means and SDs, and the map's HMM
  filters them: P(s_t | z_1..t) (``trainmap.live.gaussian``); a row whose features are
  not all finite only moves the filter by the transitions (an unobserved checkpoint);
- ``p_detour`` = P(s_t is a detour or a dead end), ``p_dead_end`` = P(s_t is a dead end);
- the convergence step: at step t, the fit runs that had not converged by t (censored
  runs while they were observed) are grouped by the state their decoded path was in at
  t; each group's Kaplan-Meier curve of the convergence step, weighted by the filter's
  P(s_t = k), gives P(C > c | z_1..t). Its median is the prediction, its 10% and 90%
  points the interval; where no fit run at risk was in state k, the group is all runs
  at risk. A point the curve never reaches (censored runs) is None: later than any fit
  run was seen.
"""

import bisect
import json
import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainmap.errors import LiveMapError
from trainmap.live.gaussian import GaussianFilter
from trainmap.live.survival import quantile_targets, sorted_times, state_curves
from trainmap.maps.convergence import direction

log = logging.getLogger(__name__)

LIVE_FILE = "live.json"
FORMAT = 1
# the prediction, then the interval's ends (an 80% interval)
LEVELS = (0.5, 0.1, 0.9)
BAD_KINDS = ("detour", "dead_end")
# A live run's checkpoints this many times closer or further apart than the fit runs'
# make the per-checkpoint transition probabilities wrong: warned about once.
SPACING_FACTOR = 2.0
# The curves of every stretch of steps between two changes (a path entering a state, a
# run converging) are computed when the map is loaded if they hold at most this many
# numbers (8 bytes each), so that a log only looks them up; a larger map computes them
# when a run gets to each stretch.
TABLE_SIZE = 4_000_000


@dataclass(frozen=True)
class Prediction:
    """Where a run is after its checkpoint at ``step``.

    ``state``: the most likely state; ``probabilities``: P(s_t = k | z_1..t), (K,);
    ``p_detour``: P(detour or dead end); ``p_dead_end``: P(dead end);
    ``predicted_convergence_step`` with ``low`` and ``high`` (an 80% interval): None where
    the fit runs give no value (later than any of them was seen); ``converged_at``: the
    step at which the run passed the map's convergence rule, if it has.
    """

    step: int
    state: int
    probabilities: tuple[float, ...]
    p_detour: float
    p_dead_end: float
    predicted_convergence_step: float | None
    low: float | None
    high: float | None
    converged_at: int | None = None

    def columns(self) -> dict[str, Any]:
        """The columns a live Recorder adds to its row (None as NaN)."""
        return {
            "state": self.state,
            "p_detour": self.p_detour,
            "predicted_convergence_step": _nan(self.predicted_convergence_step),
        }


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class LiveMap:
    """A fitted map ready for online use; ``LiveMap.load(directory)``.

    ``features`` (F,), ``mean`` and ``sd`` (F,) in the features' units, ``filter`` (the
    HMM), ``kinds`` (K,), ``convergence`` (the rule; {} for none), the fit runs' paths.
    """

    def __init__(self, data: dict[str, Any], source: str = LIVE_FILE):
        self.source = source
        self.setting = data.get("setting")
        self.features: list[str] = list(data["features"])
        self.mean = np.asarray(data["scale"]["mean"], dtype=np.float64)
        self.sd = np.asarray(data["scale"]["sd"], dtype=np.float64)
        self._constant = self.sd == 0  # constant over the fit runs: z = 0, as in the map
        self._sd = np.where(self._constant, 1.0, self.sd)
        self._any_constant = bool(self._constant.any())
        # the filter takes values in the features' units: the z-scoring is folded in
        self.filter = GaussianFilter(data["model"], scale=(self.mean, self.sd))
        self.states = data["states"]
        self.kinds = [state["kind"] for state in self.states]
        self.convergence = data.get("convergence") or {}
        if self.convergence:
            self.threshold = float(self.convergence["threshold"])
            self.above = direction(self.convergence) == "above"
        self.checkpoint_every = float(data.get("checkpoint_every") or 0.0)
        self._bad = [k for k, kind in enumerate(self.kinds) if kind in BAD_KINDS]
        self._dead = [k for k, kind in enumerate(self.kinds) if kind == "dead_end"]
        self._targets = quantile_targets(LEVELS)
        self._index_runs(data.get("runs", []))

    @classmethod
    def load(cls, directory: str | Path) -> "LiveMap":
        """The live map of a setting's results directory (or its live.json itself)."""
        path = Path(directory)
        if path.is_dir() or path.name != LIVE_FILE:
            path = path / LIVE_FILE
        if not path.exists():
            raise LiveMapError(_missing(path))
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise LiveMapError(f"{path}: not a readable live map ({error}); rerun the "
                               "workflow to write it again") from error  # fmt: skip
        if data.get("refused"):
            raise LiveMapError(f"{path}: this map cannot be used live: {data['refused']}")
        if data.get("format") != FORMAT:
            raise LiveMapError(f"{path}: live map format {data.get('format')!r}, this trainmap "
                               f"reads {FORMAT}; rerun the workflow to write it again")  # fmt: skip
        return cls(data, str(path))

    def _index_runs(self, runs: list[dict[str, Any]]) -> None:
        """The fit runs as arrays: the state of run r on a grid of steps (every step at
        which some run enters a state), and the runs in Kaplan-Meier order."""
        self.n_fit_runs = len(runs)
        if not runs:
            self._grid, self._table = np.zeros(0), None
            return
        grid = np.unique(np.concatenate([r["starts"] for r in runs]).astype(np.float64))
        ends = np.array([r["convergence_step"] for r in runs], dtype=np.float64)
        events = np.array([not r["censored"] for r in runs])
        order = sorted_times(ends, events)
        paths = np.empty((len(runs), len(grid)), dtype=np.int64)
        for i, r in enumerate(runs):
            at = np.searchsorted(np.asarray(r["starts"], np.float64), grid, side="right") - 1
            paths[i] = np.asarray(r["states"])[np.maximum(at, 0)]  # before its start: first
        self._grid, self._paths = grid, paths[order]
        self._cache_steps, self._cache = (np.inf, -np.inf), None
        self._ends, self._events = ends[order], events[order]
        self._end_values = [*self._ends.tolist(), None]  # None: a level never reached
        self._table = self._curve_table()

    def _curve_table(self) -> list[np.ndarray | None] | None:
        """The curves of every stretch (``state_curves``): B + 1 arrays (K, R) for the B
        steps at which they change (the grid's after its first, the fit runs' ends), None
        where no run is at risk; None instead of the list when larger than TABLE_SIZE."""
        breaks = np.unique(np.concatenate([self._grid[1:], self._ends]))
        if (len(breaks) + 1) * len(self.kinds) * len(self._ends) > TABLE_SIZE:
            return None
        # stretch i holds from breaks[i - 1] (-inf for i = 0) up to breaks[i]
        lows = np.concatenate([[-np.inf], breaks])
        curves, none_at_risk = state_curves(lows, self._grid, self._paths, self._ends,
                                            self._events, len(self.kinds))  # fmt: skip
        self._breaks = breaks.tolist()
        return [None if none else c for c, none in zip(curves, none_at_risk, strict=True)]

    def zscores(self, values: np.ndarray) -> np.ndarray:
        """(..., F) values in the features' units -> z-scores; constant features -> 0."""
        z = (values - self.mean) / self._sd
        if self._any_constant:
            z[..., self._constant] = 0.0
        return z

    def check_columns(self, columns, where: str) -> None:
        """LiveMapError naming the map's features that ``columns`` lacks."""
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise LiveMapError(
                f"{where} has no {', '.join(missing)}, feature(s) of the map {self.source} "
                f"(its features: {', '.join(self.features)}): log them, or use a map fitted "
                "on features this run logs (a map of another architecture?)"
            )

    def outlook(self, step: float, probabilities: np.ndarray) -> tuple[float | None, ...]:
        """(prediction, low, high) of the convergence step of a run at ``step`` not yet
        converged, whose filtered state distribution is ``probabilities`` (K,)."""
        if not self.n_fit_runs:
            return (None, None, None)
        if self._table is not None:
            curves = self._table[bisect.bisect_right(self._breaks, step)]
        else:
            curves = self._curves(step)
        if curves is None:
            return (None, None, None)  # every fit run converged (or stopped) before here
        # survival.quantiles on the mixture of the states' curves, spelt out: at every log
        at = np.searchsorted(probabilities @ curves, self._targets).tolist()
        return tuple(self._end_values[i] for i in at)

    def _curves(self, step: float) -> np.ndarray | None:
        """Minus the Kaplan-Meier curves at ``step`` (trainmap.live.survival), one per
        state over the fit runs at risk that were in it; a state no fit run at risk was in
        gets the curve of all runs at risk: (K, R), non-decreasing along R. None when no
        run is at risk. They change only where a fit run's path or risk set does, so they
        are kept for the next step (a Recorder asks at every log)."""
        low, high = self._cache_steps
        if low <= step < high:
            return self._cache
        grid, ends = self._grid, self._ends
        column = max(int(np.searchsorted(grid, step, side="right")) - 1, 0)
        first = int(np.searchsorted(ends, step, side="right"))  # ends sorted
        if first == len(ends):
            self._cache = None
        else:
            self._cache = state_curves(np.array([step], dtype=np.float64), grid, self._paths,
                                       ends, self._events, len(self.kinds))[0][0]  # fmt: skip
        # The same curves hold until a path changes state (the column: steps from
        # grid[column] up to grid[column + 1]; column 0 also below grid[0]) or a run
        # leaves the risk set (steps from ends[first - 1] up to ends[first]).
        low = max(grid[column] if column else -np.inf, ends[first - 1] if first else -np.inf)
        high = min(
            grid[column + 1] if column + 1 < len(grid) else np.inf,
            ends[first] if first < len(ends) else np.inf,
        )
        self._cache_steps = (low, high)
        return self._cache

    def run(self, seed: Any = None) -> "LiveRun":
        return LiveRun(self, seed)


class LiveRun:
    """One run filtered on a ``LiveMap``, a checkpoint at a time (``update``)."""

    def __init__(self, live_map: LiveMap, seed: Any = None):
        self.map = live_map
        self.seed = seed
        self.last: Prediction | None = None
        self._posterior: np.ndarray | None = None  # P(s_t | z_1..t), (K,)
        self._converged_at: int | None = None
        self._spacing_warned = False

    def where(self) -> str:
        return "the run" if self.seed is None else f"seed {self.seed}"

    def update(self, step: int, values: Mapping[str, Any]) -> Prediction:
        """The prediction after the checkpoint at ``step`` with ``values`` (feature and
        scalar name -> number). The first call checks that every feature is there and
        finite; steps must increase."""
        step = _step(step, self.where())
        if self.last is not None and step <= self.last.step:
            raise LiveMapError(f"{self.where()}: step {step} after step {self.last.step}: steps "
                               "must increase (a run's rows in step order)")  # fmt: skip
        if self.last is None:
            self._check_first(values)
        else:
            self._check_spacing(step - self.last.step)
        x = _numbers(values, self.map.features)
        if math.isfinite(x.sum()):  # no NaN or infinity in x
            self._posterior = self.map.filter.step(x, self._posterior)
        else:  # a row without all features: the transitions alone
            self._posterior = self.map.filter.predict(self._posterior)
        self._watch_convergence(step, values)
        self.last = self._prediction(step, self._posterior)
        return self.last

    def _check_first(self, values: Mapping[str, Any]) -> None:
        self.map.check_columns(values, f"{self.where()}'s row")
        x = _numbers(values, self.map.features)
        bad = [f for f, v in zip(self.map.features, x, strict=True) if not np.isfinite(v)]
        if bad:
            raise LiveMapError(
                f"{self.where()}: feature(s) {', '.join(bad)} of the map {self.map.source} are "
                "not finite at the first row (a model without biases has no mean_b, "
                "median_b, var_b): use a map fitted on features this model has"
            )

    def _check_spacing(self, gap: float) -> None:
        every = self.map.checkpoint_every
        if self._spacing_warned or not every:
            return
        if not 1 / SPACING_FACTOR <= gap / every <= SPACING_FACTOR:
            self._spacing_warned = True
            log.warning(
                "%s: checkpoints %g steps apart, the map's runs %g: the map's transition "
                "probabilities are per checkpoint, so its states and predictions are off; "
                "log at the map's interval", self.where(), gap, every,
            )  # fmt: skip

    def _watch_convergence(self, step: int, values: Mapping[str, Any]) -> None:
        rule = self.map.convergence
        if self._converged_at is not None or not rule or rule["column"] not in values:
            return
        if self._passed(_number(values[rule["column"]])):
            self._converged_at = step

    def _passed(self, value: float) -> bool:
        """The map's convergence rule (trainmap.maps.convergence.passed, checked against
        it in tests) for one value, without its array round trip: it runs at every log."""
        threshold, above = self.map.threshold, self.map.above
        return value > threshold if above else value < threshold  # NaN: False either way

    def _prediction(self, step: int, probabilities: np.ndarray) -> Prediction:
        if self._converged_at is not None:
            outlook = (float(self._converged_at),) * 3
        else:
            outlook = self.map.outlook(step, probabilities)
        p = probabilities.tolist()  # K is small: Python sums beat NumPy's call overhead
        return Prediction(
            step=step,
            state=int(probabilities.argmax()),
            probabilities=tuple(p),
            p_detour=sum((p[k] for k in self.map._bad), 0.0),
            p_dead_end=sum((p[k] for k in self.map._dead), 0.0),
            predicted_convergence_step=outlook[0],
            low=outlook[1],
            high=outlook[2],
            converged_at=self._converged_at,
        )


def changes(before: Prediction | None, after: Prediction, threshold: float) -> list[str]:
    """What is worth a line in the log: a new most likely state, and P(detour or dead end)
    crossing ``threshold`` (either way)."""
    lines = []
    if before is None or after.state != before.state:
        was = "" if before is None else f" (was S{before.state})"
        lines.append(f"now in state S{after.state}{was}")
    high = after.p_detour >= threshold
    if high != (before is not None and before.p_detour >= threshold):
        word = "above" if high else "below"
        lines.append(f"P(detour or dead end) {after.p_detour:.2f}, {word} {threshold:g}")
    return lines


def describe(prediction: Prediction, kinds: list[str]) -> str:
    """``S2 (detour) p_detour 0.83, converges ~4200 [3600, 5400]`` for a log line."""
    kind = kinds[prediction.state]
    text = f"S{prediction.state}{f' ({kind})' if kind else ''} p_detour {prediction.p_detour:.2f}"
    if prediction.converged_at is not None:
        return f"{text}, converged at step {prediction.converged_at}"
    return f"{text}, converges {_steps(prediction)}"


def _steps(p: Prediction) -> str:
    def show(v: float | None) -> str:
        return "?" if v is None else f"{v:.0f}"

    return f"~{show(p.predicted_convergence_step)} [{show(p.low)}, {show(p.high)}]"


def _missing(path: Path) -> str:
    folder = path.parent
    if (folder / "map.json").exists():
        return (
            f"{folder} has a map but no {LIVE_FILE}: it was made before live maps (or "
            "without hmm.normalize: global); run the workflow again to write "
            f"{folder / LIVE_FILE} (snakemake {folder / LIVE_FILE})"
        )
    return (f"no live map at {folder}: expected {path}, written by the workflow beside "
            "map.json (results/<setting>)")  # fmt: skip


def _step(value: Any, where: str) -> int:
    if type(value) is int:  # the common case, without the ABC check below (every log)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise LiveMapError(f"{where}: step {value!r} is not an integer")
    return int(value)


def _numbers(values: Mapping[str, Any], names: list[str]) -> np.ndarray:
    """``values[name]`` for every name as float64 (F,); at every log, so plain numbers
    (what a Recorder's row holds) go the fast way."""
    try:
        return np.array([values[name] for name in names], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_number(values[name]) for name in names])


def _number(value: Any) -> float:
    """A logged value as a float; anything else (a missing eval) is NaN."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return math.nan
