"""Kaplan-Meier survival of the convergence step, for many groups of runs at once.

The live map predicts a run's convergence step from the fit runs that were where it is
now (docs/live.md): at the current step t, the runs not yet converged (at risk), grouped
by the state their decoded path was in at t. A run that never converged is censored at
its last step, so the estimate neither drops it nor counts it as converged there.
"""

import numpy as np


def sorted_times(times: np.ndarray, events: np.ndarray) -> np.ndarray:
    """The order in which Kaplan-Meier visits the runs: by time, and at a tied time the
    events before the censored runs (the usual convention: a run censored at t was at
    risk at t)."""
    return np.lexsort((~np.asarray(events, dtype=bool), np.asarray(times, dtype=np.float64)))


def survival_curves(members: np.ndarray, events: np.ndarray) -> np.ndarray:
    """S_g(t_i) after each run i in Kaplan-Meier order, for every group g: (G, R).

    ``members``: (G, R) 0/1 (or boolean) membership of run i in group g, runs in the
    order ``sorted_times`` gives; ``events``: (R,) True where run i converged (False:
    censored). Processing tied events one at a time gives the product
    (1 - 1/n)(1 - 1/(n-1)) = 1 - 2/n: exactly Kaplan-Meier's factor for two tied events,
    so no grouping by unique time is needed. A run outside a group leaves its curve as it
    is; a group without runs stays at 1.
    """
    members = np.asarray(members, dtype=np.float64)
    at_risk = np.cumsum(members[:, ::-1], axis=1)[:, ::-1]  # runs at or after i, per group
    deaths = members * np.asarray(events, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, deaths / at_risk, 0.0)
    return np.cumprod(1.0 - hazard, axis=1)


def state_curves(
    steps: np.ndarray,
    grid: np.ndarray,
    paths: np.ndarray,
    ends: np.ndarray,
    events: np.ndarray,
    n_states: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Minus the Kaplan-Meier curves of the fit runs at risk at each of ``steps`` (S,),
    one per state over the runs whose path was in it there (a state no run at risk was in
    gets the curve of all runs at risk): (S, K, R), non-decreasing along R; and whether no
    run was at risk at all: (S,).

    ``grid``: (G,) the steps at which some path enters a state; ``paths``: (R, G) each
    run's state from that grid step on (before grid[0]: its first); ``ends``, ``events``:
    (R,) in ``sorted_times`` order; ``n_states``: K.
    """
    n_runs = len(ends)
    columns = np.maximum(np.searchsorted(grid, steps, side="right") - 1, 0)
    first = np.searchsorted(ends, steps, side="right")  # runs before it converged by then
    at_risk = np.arange(n_runs)[None, :] >= first[:, None]  # (S, R)
    states = paths[:, columns].T  # (S, R)
    groups = at_risk[:, None, :] & (states[:, None, :] == np.arange(n_states)[None, :, None])
    members = np.concatenate([groups, at_risk[:, None, :]], axis=1)  # (S, K + 1, R)
    curves = survival_curves(members.reshape(-1, n_runs), events).reshape(members.shape)
    empty = ~groups.any(axis=2)  # (S, K)
    return -np.where(empty[..., None], curves[:, -1:, :], curves[:, :-1, :]), first == n_runs


# 1 - 0.5 computed as a product of factors may come out 0.5000001
TOLERANCE = 1e-12


def quantile_targets(levels) -> np.ndarray:
    """What ``quantiles`` looks for in minus the survival curve: (L,)."""
    return np.asarray(levels, dtype=np.float64) - 1.0 - TOLERANCE


def quantiles(times: np.ndarray, survival: np.ndarray, levels) -> list[float | None]:
    """The first time at which ``1 - survival`` reaches each level, or None where the
    curve never gets there (the runs still at risk when the data end were censored).

    ``times``: (R,) sorted; ``survival``: (R,) non-increasing, the value after each time;
    ``levels``: (L,). By bisection on the non-decreasing -survival.
    """
    at = np.searchsorted(-np.asarray(survival), quantile_targets(levels), side="left")
    return [float(times[i]) if i < len(times) else None for i in at]
