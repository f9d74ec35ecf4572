"""When a run diverged: a loss that *was* finite and turned non-finite.

A loss column is any column with ``loss`` in its name (``train_loss``, ``eval_loss``,
``val_loss``). Non-finite values before a column's first finite one mean "not logged
yet" (a ``float("nan")`` placeholder at step 0, before any batch ran), never divergence:
such a rule would mark every row of every run diverged. The Recorder applies the rule as
rows arrive (``DivergenceWatch``); the HMM stage names the column and step of each run it
leaves out (``divergence``), from the same rule.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LOSS_WORD = "loss"


def loss_columns(columns) -> list[str]:
    """The columns that hold a loss (``loss`` in the name), in their order."""
    return [str(c) for c in columns if LOSS_WORD in str(c)]


def turned_non_finite(values: np.ndarray) -> int | None:
    """Index of the first non-finite value that follows a finite one, or None.

    values: (T,) one column of one run in step order. ``[nan, 1, 2]`` -> None (not logged
    yet); ``[1, 2, nan]`` -> 2; ``[nan, 1, inf]`` -> 2.
    """
    finite = np.isfinite(np.asarray(values, dtype=float))
    seen_before = np.r_[False, np.cumsum(finite)[:-1] > 0]
    bad = np.flatnonzero(~finite & seen_before)
    return int(bad[0]) if len(bad) else None


@dataclass(frozen=True)
class Divergence:
    """Where a run diverged: the loss column(s) that turned non-finite at ``step``."""

    columns: tuple[str, ...]
    step: int

    def text(self) -> str:
        names = ", ".join(self.columns)
        verb = "turned" if len(self.columns) == 1 else "all turned"
        return f"{names} {verb} non-finite at step {self.step} (finite before)"


def divergence(run: pd.DataFrame, flagged_from: int | None = None) -> Divergence | None:
    """The first step at which a loss column of ``run`` turned non-finite, or None.

    run: one run's rows sorted by ``step``. flagged_from: the first step its ``diverged``
    column marks, if any: only a column that turned non-finite exactly there is named
    (a Recorder's row leaves out a loss it was not given, which reads as NaN).
    """
    steps = run["step"].to_numpy()
    found: dict[int, list[str]] = {}
    for column in loss_columns(run.columns):
        index = turned_non_finite(run[column].to_numpy(dtype=float))
        if index is not None:
            found.setdefault(int(steps[index]), []).append(column)
    if flagged_from is not None:
        found = {s: c for s, c in found.items() if s == flagged_from}
    if not found:
        return None
    step = min(found)
    return Divergence(tuple(found[step]), step)


@dataclass
class DivergenceWatch:
    """The rule applied row by row (trainmap.record.Recorder): ``update`` takes one row's
    losses and returns the columns that diverged at it (empty: none, or already diverged).

    seen: loss columns that have had a finite value; diverged: whether a row already did.
    """

    seen: set[str] = field(default_factory=set)
    diverged: bool = False

    def update(self, losses: dict[str, float]) -> list[str]:
        turned = [name for name, v in losses.items() if not np.isfinite(v) and name in self.seen]
        self.seen |= {name for name, v in losses.items() if np.isfinite(v)}
        if turned and not self.diverged:
            self.diverged = True
            return turned
        return []

    @classmethod
    def resumed(cls, earlier: pd.DataFrame) -> "DivergenceWatch":
        """The state after a previous process's rows (a resumed run): the columns with a
        finite value, and whether its last row was diverged."""
        seen = {
            c
            for c in loss_columns(earlier.columns)
            if np.isfinite(earlier[c].to_numpy(float)).any()
        }
        diverged = bool(len(earlier) and earlier["diverged"].iloc[-1])
        return cls(seen, diverged)
