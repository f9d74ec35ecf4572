"""Models without biases (METHOD.md section 2): ``mean_b, median_b, var_b`` do not exist.

A Llama-style model, or any model whose layers are built with ``bias=False``, has no
biases to pool, so its three bias metrics are NaN at every checkpoint. That is not
divergence. The rule, for recorded runs, tables, trained runs and checkpoint series alike:

- such a run is kept (its NaN bias columns never mark it diverged);
- the default features (the 14 metrics) leave the three out, said once in the log and in
  the summary;
- a feature list that names them is refused, with the reason.

A run counts as bias-free when every bias column it has is NaN (not infinite: an
infinite value is a bias that blew up) at every one of its checkpoints. Where the model
says so before any run is read (a checkpoint series' config.json, ``Setting.bias_free``),
config validation applies the rule at once (``default_features``, ``refused_features``).
"""

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.io.files import plain

log = logging.getLogger(__name__)

BIAS_COLUMNS = ("mean_b", "median_b", "var_b")
REASON = (
    "a bias-free model (no bias among the tensors the metrics read) has no mean_b, median_b "
    "or var_b: they are NaN at every checkpoint"
)
SUMMARY_NOTE = "bias-free model: mean_b, median_b, var_b NaN throughout, not features"


class BiasFeatureError(ValueError):
    """A feature list names bias metrics of runs whose model has no biases."""


def bias_free_runs(table: pd.DataFrame) -> list:
    """Runs (``seed`` values, sorted) whose bias columns are NaN at every checkpoint; []
    when the table has no bias column."""
    columns = [c for c in BIAS_COLUMNS if c in table.columns]
    if not columns or table.empty:
        return []
    values = table[columns].to_numpy(dtype=np.float64)
    missing = pd.Series(np.isnan(values).all(axis=1), index=table.index)
    free = missing.groupby(table["seed"]).all()
    return sorted(plain(run) for run in free.index[free.to_numpy()])


def bias_free_cells(table: pd.DataFrame, features: list[str]) -> np.ndarray:
    """(rows, features) mask: True where a value is a bias metric of a bias-free run (NaN
    by design, not divergence)."""
    mask = np.zeros((len(table), len(features)), dtype=bool)
    free = table["seed"].isin(bias_free_runs(table)).to_numpy()
    for j, feature in enumerate(features):
        if feature in BIAS_COLUMNS:
            mask[:, j] = free
    return mask


def usable_features(
    table: pd.DataFrame, features: list[str], given: bool, where: str = "features"
) -> tuple[list[str], list]:
    """The features the HMM can use, and the bias-free runs (``[]`` if none).

    given: the setting named its features (``features:``); False for the default list,
    from which the bias metrics are left out when some run has no biases (logged). A
    given list that names them raises BiasFeatureError (``where``: its config key).
    """
    free = bias_free_runs(table)
    named = [f for f in features if f in BIAS_COLUMNS]
    if not free or not named:
        return list(features), free
    n_runs = table["seed"].nunique()
    runs = f"{len(free)} of {n_runs} run(s) ({_listed(free)})"
    if given:
        raise BiasFeatureError(
            f"{where}: {', '.join(named)} are NaN at every checkpoint of {runs}: their "
            "model has no biases, so there are no bias metrics to fit (METHOD.md section 2); "
            "leave them out of the feature list"
        )
    log.warning(
        "%s have no biases (%s NaN at every checkpoint): kept, not diverged; the default "
        "features leave %s out",
        runs,
        ", ".join(named),
        ", ".join(named),
    )
    return [f for f in features if f not in BIAS_COLUMNS], free


def bias_note(free: list, n_runs: int, left_out: list[str]) -> str:
    """One line for the summary: which runs have no biases and what the features left out."""
    return (
        f"{len(free)} of {n_runs} run(s) have no biases ({_listed(free)}): "
        f"{', '.join(left_out)} left out of the default features"
    )


def _listed(runs: list, limit: int = 8) -> str:
    shown = ", ".join(map(str, runs[:limit]))
    return shown + (", ..." if len(runs) > limit else "")


def bias_free_columns(table: pd.DataFrame) -> list[str]:
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


def bias_free_settings(settings) -> list[str]:
    """Names of the settings known to be bias-free (``Setting.bias_free``), sorted."""
    return sorted(name for name, setting in settings.items() if setting.bias_free)


def with_note(note: str) -> str:
    """A summary row's note with the bias-free one added."""
    return "; ".join(part for part in (note, SUMMARY_NOTE) if part)
