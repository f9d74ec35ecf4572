"""What the states explain about convergence time beyond a trivial baseline.

The detour regression's R^2 (METHOD.md section 6) is largely circular: a run's fraction
of checkpoints in its last state is about 1 - convergence step / run length whenever a
state boundary falls near convergence, so one boundary alone gives an R^2 near 1 whatever
the states mean. ``regression.json`` therefore reports, beside ``r2``:

Both are fitted on the runs that converge (``n_converged``): a censored run's time is its
run length, not a convergence time, and runs that never converge are the dead ends'
business (METHOD.md section 6).

- ``r2_last_state``: the R^2 of convergence time on that one fraction alone (the trivial
  baseline): when it is close to ``r2``, the occupancy regression says little more than
  "one state boundary tracks convergence";
- **Decision: the route regression.** ``route_r2``, ``route_f_pvalue`` and
  ``route_r2_cv``: OLS of convergence time on which states a run passes through *before
  the state it converges in* (0/1 per state, with an intercept): the checkpoints before
  the convergence checkpoint, leaving out the state the run is in when it converges.
  Nothing here can measure time: every run on one linear path has the same route and the
  regression explains nothing, while runs that converge later *because* they took a side
  state differ in their route. ``route_r2_cv`` is its out-of-sample R^2 over ``ROUTE_FOLDS``
  folds of runs (seeded, sorted runs; 1 - squared prediction error / squared deviation
  from the mean of all runs): above 0 only if the route predicts convergence time of
  runs it was not fitted on.
"""

import numpy as np
import pandas as pd

from trainmap.seeding import derive_seed

ROUTE_FOLDS = 5
ROUTE_RULE = (
    "converged runs: OLS of convergence time on which states a run passes through before "
    "the state it converges in (0/1 per state, intercept); route_r2_cv: out-of-sample "
    f"R^2 over {ROUTE_FOLDS} folds of runs"
)
BASELINE_RULE = (
    "converged runs: R^2 of convergence time on the fraction of the run in its last state"
)


def last_state_fraction(states: pd.DataFrame) -> pd.Series:
    """Per run (indexed by seed): the fraction of its checkpoints in its last state."""
    paths = states.sort_values(["seed", "step"], kind="stable").groupby("seed")["state"]
    return paths.apply(lambda path: float(np.mean(path.to_numpy() == path.iloc[-1])))


def route_design(states: pd.DataFrame, times: pd.DataFrame, n_states: int) -> pd.DataFrame:
    """Runs x states, 1 where the run visits the state before the state it converges in.

    ``times``: per run (indexed by seed) ``convergence_step`` and ``censored``
    (trainmap.maps.detours.convergence_times).
    """
    rows = {}
    for seed, run in states.sort_values(["seed", "step"], kind="stable").groupby("seed"):
        path, steps = run["state"].to_numpy(), run["step"].to_numpy()
        visited = np.zeros(n_states)
        if bool(times.at[seed, "censored"]):  # never converges: every state it visits
            visited[np.unique(path)] = 1
        else:
            at = int(np.searchsorted(steps, times.at[seed, "convergence_step"]))
            before = path[:at]
            if at < len(path):  # else it converges after the checkpoints the HMM saw
                before = before[before != path[at]]
            visited[np.unique(before)] = 1
        rows[seed] = visited
    return pd.DataFrame.from_dict(rows, orient="index", columns=range(n_states))


def _r2(y: np.ndarray, x: np.ndarray) -> float:
    """In-sample R^2 of OLS of y on one regressor x with an intercept."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def _independent_columns(design: np.ndarray) -> np.ndarray:
    """The columns of ``design`` that, in order, add to the rank of [1, columns kept]: a
    state every run (or none) takes, or one taken by exactly the runs of another, adds
    nothing to the route (and would leave the OLS coefficients undetermined)."""
    kept = np.ones((len(design), 1))
    for column in design.T:
        candidate = np.column_stack([kept, column])
        if np.linalg.matrix_rank(candidate) > kept.shape[1]:
            kept = candidate
    return kept[:, 1:]


def _cv_r2(design: np.ndarray, y: np.ndarray, seed: int) -> float | None:
    """Out-of-sample R^2 of OLS with an intercept over ROUTE_FOLDS folds of runs."""
    n = len(y)
    folds = min(ROUTE_FOLDS, n)
    if folds < 2 or np.ptp(y) == 0:
        return None
    order = np.random.default_rng(derive_seed("route_cv", seed)).permutation(n)
    predicted = np.empty(n)
    for fold in range(folds):
        held = order[fold::folds]
        train = np.setdiff1d(order, held)
        X = np.column_stack([np.ones(len(train)), design[train]])
        coef, *_ = np.linalg.lstsq(X, y[train], rcond=None)
        predicted[held] = np.column_stack([np.ones(len(held)), design[held]]) @ coef
    return float(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def route_evidence(states: pd.DataFrame, times: pd.DataFrame, n_states: int, seed: int = 0) -> dict:
    """``r2_last_state``, ``route_r2``, ``route_f_pvalue``, ``route_r2_cv`` (nulls where
    nothing varies) and the rules, over the converged runs in ``states`` (all must be in
    ``times``)."""
    runs = sorted(set(states["seed"]) & set(times.index[~times["censored"]]))
    states = states[states["seed"].isin(runs)]
    y = times.loc[runs, "convergence_step"].to_numpy(dtype=float)
    design = route_design(states, times, n_states).loc[runs].to_numpy()
    design = _independent_columns(design)
    result = {
        "n_converged": len(runs),
        "r2_last_state": _r2(y, last_state_fraction(states).loc[runs].to_numpy()),
        "route_r2": None,
        "route_f_pvalue": None,
        "route_r2_cv": None,
        "route_rule": ROUTE_RULE,
        "baseline_rule": BASELINE_RULE,
    }
    if np.ptp(y) == 0 or len(y) <= design.shape[1] + 1:
        return result  # nothing to explain, or too few runs for the route's states
    if design.shape[1] == 0:  # every run takes the same route: it explains nothing
        return {**result, "route_r2": 0.0, "route_r2_cv": 0.0}
    import statsmodels.api as sm  # ~0.8 s: only the regression job pays it, not every reader

    fit = sm.OLS(y, sm.add_constant(design, has_constant="add")).fit()
    result.update(
        route_r2=float(fit.rsquared),
        route_f_pvalue=float(fit.f_pvalue),
        route_r2_cv=_cv_r2(design, y, seed),
    )
    return result
