"""Shared look of every figure: the state palette, detour red, number formats, saving.

Every figure colours state k the same way (``state_colors``), marks detour states in
``DETOUR`` red and dead ends (states only non-converging runs visit) in dashed
``DEAD_END`` grey, so the map, the trajectories and the coefficients read together.
"""

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from trainmap.io.atomic import atomic_path

# Qualitative palette without red, which is reserved for detours.
PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
    "#2F4B7C",
    "#A0CBE8",
    "#86BCB6",
]
DETOUR = "#C44E52"
DEAD_END = "#555555"
INK = "#333333"
UNDECODED = "#D0D0D0"


def state_colors(n_states: int) -> list[str]:
    return [PALETTE[k % len(PALETTE)] for k in range(n_states)]


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")


def signed(value: float, digits: int = 2) -> str:
    """'+0.59' / '−0.59' with a typographic minus."""
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def feature_change(name: str, delta: float) -> str:
    """'↑ l2 +0.59' / '↓ l2 −0.59' ('· l2 +0.00' for no change at this precision)."""
    arrow = "\u2191" if delta >= 0.005 else "\u2193" if delta <= -0.005 else "\u00b7"
    return f"{arrow} {name} {signed(delta)}"


def detour_states(detours: pd.DataFrame | None) -> set[int]:
    if detours is None or detours.empty:
        return set()
    return set(detours.loc[detours["is_detour"].astype(bool), "state"].astype(int))


def dead_end_states(detours: pd.DataFrame | None) -> set[int]:
    """States only runs that never converge visit (``kind == "dead_end"``)."""
    if detours is None or detours.empty or "kind" not in detours:
        return set()
    return set(detours.loc[detours["kind"] == "dead_end", "state"].astype(int))


def transition_label(source: int, target: int, probability: float) -> str:
    """'P(S2→S0) = 0.14': a learned transition probability, never read as a p-value."""
    return f"P(S{source}\u2192S{target}) = {probability:.2g}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def regression_line(regression: dict) -> str:
    if regression.get("r2") is None:
        return f"regression not interpretable: {regression.get('reason')}"
    text = f"R\u00b2 = {regression['r2']:.2f}, F-test p = {regression['f_pvalue']:.2g}"
    if not regression["significant"]:
        text += f" (not significant at \u03b1 = {regression['alpha']:g})"
    return text
