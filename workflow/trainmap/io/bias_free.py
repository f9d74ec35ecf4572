"""Bias-free models (Llama-style: no Linear has a bias): METHOD.md section 2.

Such a model has no ``mean_b``, ``median_b``, ``var_b``: those columns are NaN at every
checkpoint. That is not divergence: the run is kept, the default features leave the three
out, and a feature list that names them is refused with the reason. Shared by every stage
that meets such a run (checkpoint series, recorded runs, the HMM's sequences).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainmap.io.columns import METRIC_COLUMNS

if TYPE_CHECKING:  # pandas only for the annotation: config validation stays light
    import pandas as pd

BIAS_COLUMNS = ("mean_b", "median_b", "var_b")
REASON = (
    "a bias-free model (no bias among the tensors the metrics read) has no mean_b, median_b "
    "or var_b: they are NaN at every checkpoint"
)


def bias_free_columns(table: "pd.DataFrame") -> list[str]:
    """The bias columns of ``table`` that are NaN in every row: all three where the rows
    come from a bias-free model, else none (a NaN in some rows only is divergence)."""
    present = [c for c in BIAS_COLUMNS if c in table.columns]
    if len(table) and present and table[present].isna().all().all():
        return present
    return []


def checked_columns(bias_free: bool) -> list[str]:
    """The metric columns whose non-finite values mark a run diverged."""
    return [c for c in METRIC_COLUMNS if not (bias_free and c in BIAS_COLUMNS)]


def default_features(bias_free: bool) -> list[str]:
    """The default features: the 14 metrics, less the bias ones for a bias-free model."""
    return checked_columns(bias_free)


def refused_features(features: Sequence[str]) -> list[str]:
    """The features a bias-free model cannot give."""
    return [f for f in features if f in BIAS_COLUMNS]


SUMMARY_NOTE = "bias-free model: mean_b, median_b, var_b NaN throughout, not features"


def bias_free_settings(settings) -> list[str]:
    """Names of the settings known to be bias-free (``Setting.bias_free``), sorted."""
    return sorted(name for name, setting in settings.items() if setting.bias_free)


def with_note(note: str) -> str:
    """A summary row's note with the bias-free one added."""
    return "; ".join(part for part in (note, SUMMARY_NOTE) if part)
