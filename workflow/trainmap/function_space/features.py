"""Function-space components as HMM features: ``features: [l2, pc1, pc2]``.

A setting with ``probe:`` may name ``pc1``, ``pc2``, ... (up to ``probe.components``) in
its features. Rule fit_function_space fits the PCA of every run's probe losses before the
HMM (``pca/coords.parquet``), and rule collect_trajectories joins the named components
to the trajectories on (seed, step) (``join_coords``).

The PCA is fit on all runs of the setting, so a run's PC features depend on the other
runs, and the HMM's validation runs are not held out from the PCA.

Torch- and scikit-learn-free: config validation imports it.
"""

import logging
import re

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PC_FEATURE = re.compile(r"pc([1-9][0-9]*)")  # pc1, pc2, ... (no pc0, no pc01)


def pc_number(feature: str) -> int | None:
    """N of a ``pcN`` feature; None for any other name."""
    match = PC_FEATURE.fullmatch(feature)
    return int(match.group(1)) if match else None


def pc_features(features: list[str]) -> list[str]:
    """The features that are function-space components, in their order."""
    return [f for f in features if pc_number(f) is not None]


def join_coords(trajectories: pd.DataFrame, coords: pd.DataFrame, features: list[str]):
    """``trajectories`` with the ``pcN`` columns of ``features`` from ``coords``
    (``seed, step, pc1..pcK``, rule fit_function_space) joined on (seed, step).

    Every checkpoint of the trajectories must have a row in ``coords`` (probe losses
    logged at every checkpoint); a ValueError names the first one without. A checkpoint
    whose losses were not finite (left out of the PCA) keeps its row with NaN components:
    prepare_sequences then leaves its run out of the HMM as diverged, naming the pc
    column, like a run with a non-finite weight metric.
    """
    names = pc_features(features)
    if not names:
        return trajectories
    missing = [n for n in names if n not in coords.columns]
    if missing:
        raise ValueError(
            f"function space: {missing} not in the PCA's {len(coords.columns) - 2} "
            "components (K is at most the number of finite checkpoints and of probe examples)"
        )
    clash = [n for n in names if n in trajectories.columns]
    if clash:
        raise ValueError(
            f"function space: the runs already have column(s) {clash}; pcN features are the "
            "function-space components: rename the logged columns"
        )
    joined = trajectories.merge(
        coords[["seed", "step", *names]], on=["seed", "step"], how="left", indicator=True
    )
    absent = (joined.pop("_merge") == "left_only").to_numpy()
    if absent.any():
        first = joined.loc[absent].iloc[0]
        raise ValueError(
            f"function space: {int(absent.sum())} checkpoint(s) have no probe losses, e.g. "
            f"seed {first['seed']} step {first['step']}; pc features need the probe losses "
            "at every checkpoint (Recorder.log(..., probe_losses=...) at every call)"
        )
    non_finite = ~np.isfinite(joined[names].to_numpy(dtype=np.float64)).all(axis=1)
    if non_finite.any():
        runs = sorted(joined.loc[non_finite, "seed"].unique().tolist())
        log.warning(
            "%d checkpoint(s) of run(s) %s have no finite PCs (non-finite probe losses): "
            "the HMM leaves these runs out as diverged",
            int(non_finite.sum()),
            runs,
        )
    return joined
