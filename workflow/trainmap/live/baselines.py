"""The three baselines a live map's prediction is measured against (docs/live.md).

Each predicts a held-out run's convergence step from what the map also has at step
``cut``: the other (training) runs whole, and the held-out run's rows up to ``cut``.

- ``mean_remaining``: the training runs' mean convergence step among those not yet
  converged at ``cut`` (censored runs at their last step, a lower bound, as the detour
  regression counts them);
- ``curve_extrapolation``: a logistic curve fitted (``scipy.optimize.curve_fit``) to the
  run's own convergence column up to ``cut``, and the step at which it passes the
  threshold;
- ``slope_regression``: least squares of the convergence step on the convergence column's
  value at ``cut`` and its slope over the last ``SLOPE_WINDOW`` checkpoints, fitted on
  the training runs not converged at ``cut``.

A baseline with no answer (a curve that never reaches the threshold, a fit that fails)
predicts ``horizon``: the last step any training run was observed at, as the map does
where its survival curve never gets to one half.
"""

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from trainmap.maps.convergence import direction

SLOPE_WINDOW = 5  # checkpoints over which the recent slope is taken


def mean_remaining(ends: np.ndarray, cut: float, horizon: float) -> float:
    """Mean of ``ends`` (training runs' convergence steps) above ``cut``."""
    later = ends[ends > cut]
    return float(later.mean()) if later.size else horizon


def _logistic(t, low, high, middle, width):
    return low + (high - low) / (1.0 + np.exp(-(t - middle) / width))


def curve_extrapolation(
    steps: np.ndarray, values: np.ndarray, convergence: dict, horizon: float
) -> float:
    """The step at which a logistic fitted to (steps, values) passes the threshold; the
    curve's parameters are fitted on steps scaled to [0, 1] over what is seen."""
    keep = np.isfinite(values)
    steps, values = steps[keep].astype(float), values[keep].astype(float)
    threshold = float(convergence["threshold"])
    if len(steps) < 4:
        return horizon
    span = max(steps[-1], 1.0)
    t = steps / span
    spread = max(float(np.ptp(values)), 1e-6)
    guess = (values[0], values[-1] + np.sign(values[-1] - values[0]) * spread, 1.0, 0.25)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # exp overflow while searching
            (low, high, middle, width), _ = curve_fit(
                _logistic, t, values, p0=guess, maxfev=2000,
                bounds=([-np.inf, -np.inf, -np.inf, 1e-3], [np.inf, np.inf, np.inf, np.inf]),
            )  # fmt: skip
    except (RuntimeError, ValueError):
        return horizon
    above = direction(convergence) == "above"
    if (high > threshold) != above or high == threshold:
        return horizon  # its far end never passes the threshold
    if (low > threshold) == above and low != threshold:
        return float(steps[-1])  # already past it: converging now
    crossing = middle + width * np.log((threshold - low) / (high - threshold))
    return float(np.clip(crossing * span, steps[-1], horizon))


def run_features(steps: np.ndarray, values: np.ndarray, cut: float) -> tuple[float, float]:
    """(value, slope per step) of a run's convergence column at its last checkpoint at or
    before ``cut``, the slope over the last ``SLOPE_WINDOW`` checkpoints (NaN without)."""
    seen = (steps <= cut) & np.isfinite(values)
    steps, values = steps[seen].astype(float), values[seen].astype(float)
    if not len(steps):
        return (np.nan, np.nan)
    window = slice(max(len(steps) - SLOPE_WINDOW, 0), None)
    if len(steps[window]) < 2:
        return (float(values[-1]), 0.0)
    slope = np.polyfit(steps[window], values[window], 1)[0]
    return (float(values[-1]), float(slope))


def slope_regression(
    train_x: np.ndarray, train_ends: np.ndarray, x: np.ndarray, horizon: float
) -> float:
    """OLS of ``train_ends`` on ``train_x`` (n, 2: value, slope) with an intercept,
    evaluated at ``x`` (2,); clipped to [0, horizon]. Fewer than 4 usable training runs:
    their mean."""
    usable = np.isfinite(train_x).all(axis=1)
    if not np.isfinite(x).all() or usable.sum() < 4:
        return float(train_ends.mean()) if train_ends.size else horizon
    design = np.column_stack([np.ones(usable.sum()), train_x[usable]])
    coefficients, *_ = np.linalg.lstsq(design, train_ends[usable], rcond=None)
    return float(np.clip(coefficients @ np.r_[1.0, x], 0.0, horizon))
