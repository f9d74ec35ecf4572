"""The convergence rule of a setting: ``convergence: {column, threshold, direction}``.

A run converges at its first checkpoint whose ``column`` passes ``threshold`` strictly in
``direction``: ``above`` (the default, and the paper's rule: an accuracy that exceeds 0.9)
or ``below`` (a loss that falls under 2.5). NaN never passes either way. Settings written
before ``direction`` existed mean ``above``; the key is left out of their config as it
was, so their results keep their provenance.
"""

import numpy as np

DIRECTIONS = ("above", "below")
DEFAULT_DIRECTION = "above"
SIGNS = {"above": ">", "below": "<"}


def direction(convergence: dict) -> str:
    """``above`` or ``below`` (``above`` when the setting does not say); else ValueError."""
    value = convergence.get("direction", DEFAULT_DIRECTION)
    if value not in DIRECTIONS:
        raise ValueError(f"convergence.direction: {value!r} is not one of {', '.join(DIRECTIONS)}")
    return value


def passed(values: np.ndarray, convergence: dict) -> np.ndarray:
    """Boolean mask, same shape as ``values``: True where a value passes the threshold
    strictly in the setting's direction (NaN: False)."""
    values = np.asarray(values, dtype=float)
    threshold = float(convergence["threshold"])
    with np.errstate(invalid="ignore"):
        return values > threshold if direction(convergence) == "above" else values < threshold


def rule_text(convergence: dict) -> str:
    """The rule in words for labels: ``first eval_loss < 2.5``."""
    sign = SIGNS[direction(convergence)]
    return f"first {convergence['column']} {sign} {float(convergence['threshold']):g}"
