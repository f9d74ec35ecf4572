"""Convergence time, state occupancy and the detour regression (METHOD.md section 6).

Decisions (documented for users in ``regression.json`` and the report captions):

- **Convergence time** is the step of a run's first checkpoint whose convergence column
  is strictly above the threshold (``direction: below``: strictly below it, for a loss),
  over the run's whole trajectory (not only the checkpoints the HMM saw). A run that
  never crosses is **censored**: as the authors do, its time is set to its last logged
  step (a lower bound on the truth); it is flagged (``censored``), counted
  (``n_censored``) and listed, and the regression is not interpreted when every run is
  censored.
- **Regression**: ordinary least squares of convergence time on all K occupancy
  fractions with no separate intercept; the fractions sum to 1, so the constant is
  implicit (``hasconst=True``: R^2 is centred and the F-test compares with the
  intercept-only model). The outcome is the convergence time minus its mean over the
  runs, so a coefficient is the *delay*, in steps, of a run that stays in that state
  relative to the average run, and "positive coefficient" means "slower than average".
  (With the raw time every coefficient is a convergence time, almost always positive, and
  every optional state would be a detour.) ``convergence_if_stayed`` = coefficient + the
  mean convergence time. Centring changes neither R^2, the F-test nor the standard
  errors. States no run visits have an all-zero column and are left out of the fit.
- **Detour** (paper, section 2.3: a state some runs *converge* without visiting):
  positive coefficient, the model significant at ``alpha`` (F-test), visited by at least
  one converged (uncensored) run and skipped by at least one other converged run.
  "Optional" is decided over the converged runs only: a state that every converged run
  passes through is on the main road even when the censored runs skip it.
- **Dead end**: a state that runs visit but no converged run does (only censored runs,
  which never reach the threshold, go there). It is reported as ``kind = dead_end``
  whether or not the regression is significant, never as a detour. Every state has a
  ``kind``: ``detour``, ``dead_end`` or empty; ``is_detour`` is ``kind == "detour"``.
- **coefficient_sd**: the coefficient divided by the sample SD (ddof = 1) of the
  convergence times of the runs in the regression (censored runs at their censoring
  time), i.e. the delay in SDs of convergence time: the scale of the paper's Table 2.
- **Dissimilarity**: mean over pairs of runs of the 1-D Wasserstein distance between
  their occupancy distributions, with each state placed at its rank in training order
  (by mean first-visit step), so the value does not depend on the HMM's arbitrary state
  numbering; one unit = one step along the map.
"""

import itertools
import logging

import numpy as np
import pandas as pd

from trainmap.io.files import plain, read_csv
from trainmap.maps.convergence import direction, passed
from trainmap.maps.evidence import route_evidence

log = logging.getLogger(__name__)

CENSORING_RULE = (
    "censored runs (never past the threshold in its direction) are set to their last logged step"
)
OUTCOME = "convergence step minus its mean over runs (coefficient = delay vs the average run)"
DETOUR_RULE = (
    "detour: positive coefficient, regression significant at alpha, visited by some converged "
    "runs and skipped by others; dead_end: visited only by censored runs"
)
SD_SCALE = "coefficient_sd = coefficient / sample SD (ddof=1) of convergence time over the runs"
TABLE_COLUMNS = (
    "state",
    "coefficient",
    "std_error",
    "p_value",
    "runs_visiting",
    "is_detour",
    "converged_runs_visiting",
    "kind",
    "coefficient_sd",
    "convergence_if_stayed",
)
UNMEASURED_RULE = (
    "runs with no finite value in the convergence column are left out of the regression "
    "(listed in unmeasured_runs), not counted as censored"
)


def read_detour_table(path) -> pd.DataFrame:
    """``detours.csv`` as written by ``fit_detour_regression``, with an empty ``kind`` read
    back as ``""`` (not NaN)."""
    table = read_csv(path, dtype={"kind": str})
    return table.fillna({"kind": ""})


def convergence_times(
    trajectories: pd.DataFrame, column: str, threshold: float, direction: str = "above"
) -> pd.DataFrame:
    """One row per run, indexed by seed: ``convergence_step``, ``censored``, ``last_step``,
    ``measured``.

    ``convergence_step`` is the first step whose ``column`` is > ``threshold`` (direction
    ``above``) or < ``threshold`` (``below``, e.g. a loss); censored runs get
    ``last_step``. NaN values never count as crossing (trainmap.maps.convergence).
    """
    if column not in trajectories.columns:
        raise ValueError(f"convergence column {column!r} is not in the trajectories table")
    table = trajectories.sort_values(["seed", "step"], kind="stable")
    last = table.groupby("seed")["step"].max()
    rule = {"column": column, "threshold": threshold, "direction": direction}
    first = (
        table.loc[passed(table[column].to_numpy(dtype=float), rule)].groupby("seed")["step"].min()
    )
    out = pd.DataFrame({"last_step": last})
    out["censored"] = ~out.index.isin(first.index)
    out["convergence_step"] = first.reindex(out.index).fillna(out["last_step"]).astype(int)
    measured = np.isfinite(table[column].to_numpy(dtype=float))
    out["measured"] = pd.Series(measured, index=table.index).groupby(table["seed"]).any()
    return out[["convergence_step", "censored", "last_step", "measured"]]


def unmeasured_runs(times: pd.DataFrame, column: str) -> list:
    """Runs with no finite value in the convergence column, logged: they are left out of
    the regression (as diverged runs are left out of the HMM), not counted as censored,
    since nothing says whether they ever crossed the threshold."""
    runs = [plain(run) for run in times.index[~times["measured"]]]
    if runs:
        log.warning("run(s) %s left out of the detour regression: no finite %s value", runs, column)
    return runs


def occupancy_fractions(states: pd.DataFrame, n_states: int) -> pd.DataFrame:
    """Fraction of each run's checkpoints in each state: (runs, n_states), rows sum to 1."""
    counts = pd.crosstab(states["seed"], states["state"]).reindex(
        columns=range(n_states), fill_value=0
    )
    counts.columns.name = "state"
    return counts.div(counts.sum(axis=1), axis=0)


def runs_visiting(states: pd.DataFrame, n_states: int) -> np.ndarray:
    """Number of runs whose decoded path visits each state: (n_states,)."""
    visits = states.drop_duplicates(["seed", "state"])["state"].value_counts()
    return visits.reindex(range(n_states), fill_value=0).to_numpy()


def mean_first_visit(states: pd.DataFrame, n_states: int) -> np.ndarray:
    """Mean over visiting runs of the step of the first visit: (n_states,), NaN if unvisited."""
    first = states.groupby(["seed", "state"])["step"].min().groupby("state").mean()
    return first.reindex(range(n_states)).to_numpy(dtype=float)


def training_order(states: pd.DataFrame, n_states: int) -> list[int]:
    """States sorted by mean first-visit step; unvisited states last, by id."""
    first = mean_first_visit(states, n_states)
    key = np.where(np.isnan(first), np.inf, first)
    return [int(k) for k in np.lexsort((np.arange(n_states), key))]


def trajectory_dissimilarity(occupancy: pd.DataFrame, positions: np.ndarray) -> float:
    """Mean pairwise Wasserstein distance between runs' occupancy distributions.

    positions: (n_states,) location of each state on the line (its training-order rank).
    NaN with fewer than two runs.
    """
    weights = occupancy.to_numpy(dtype=float)
    if len(weights) < 2:
        return float("nan")
    from scipy.stats import wasserstein_distance  # ~0.5 s, for this one function

    distances = [
        wasserstein_distance(positions, positions, weights[i], weights[j])
        for i, j in itertools.combinations(range(len(weights)), 2)
    ]
    return float(np.mean(distances))


def _why_not_interpretable(design: np.ndarray, y: np.ndarray, censored: np.ndarray) -> str | None:
    """The reason the regression cannot be fitted or read, or None if it can."""
    n_runs, n_params = design.shape
    if n_runs == 0:
        return "no decoded runs"
    if censored.all():
        return "no run converged: every run is censored (never past the threshold)"
    if n_params < 2:
        return "only one state is visited: occupancy cannot explain convergence time"
    if np.ptp(design, axis=0).max() == 0:
        return "every run has the same state occupancy (identical paths): nothing to regress on"
    if n_runs <= n_params:
        return f"{n_runs} runs for {n_params} coefficients: no residual degrees of freedom"
    rank = np.linalg.matrix_rank(design)
    if rank < n_params:
        return f"occupancy fractions are collinear (rank {rank} for {n_params} visited states)"
    if np.ptp(y) == 0:
        return "every run has the same convergence time: nothing to explain"
    return None


def regression_summary(
    n_runs: int,
    alpha: float,
    reason: str | None = None,
    y: np.ndarray | None = None,
    censored: np.ndarray | None = None,
) -> dict:
    """The head of regression.json before (or without) a fit: counts, mean and SD of the
    convergence times ``y`` (None without convergence times), the rules. With
    ``run_summary`` it is the one builder of regression.json, for a setting with a
    regression (``analyze_detours``) and without one (``maps.no_regression``), so the
    two files keep the same keys."""
    sd = float(np.std(y, ddof=1)) if y is not None and len(y) > 1 else None
    return {
        "r2": None,
        "f_pvalue": None,
        "n_runs": n_runs,
        "n_censored": None if censored is None else int(censored.sum()),
        "alpha": alpha,
        "significant": False,
        "reason": reason,
        "mean_convergence": float(y.mean()) if y is not None and len(y) else None,
        "sd_convergence": sd,
        "outcome": OUTCOME,
        "censoring": CENSORING_RULE,
        "detour_rule": DETOUR_RULE,
        "coefficient_sd_rule": SD_SCALE,
    }


def run_summary(
    table: pd.DataFrame,
    occupancy: pd.DataFrame,
    states: pd.DataFrame,
    *,
    censored_runs: list,
    excluded_runs: list,
    unmeasured_runs: list,
    convergence: dict | None,
) -> dict:
    """The tail of regression.json: how alike the runs' routes are (``dissimilarity``),
    the detours and dead ends of ``table``, and which runs were censored, left out by
    the HMM (excluded) or never measured."""
    n_states = occupancy.shape[1]
    positions = np.empty(n_states)
    positions[training_order(states, n_states)] = np.arange(n_states)
    dissimilarity = trajectory_dissimilarity(occupancy, positions)
    return {
        "dissimilarity": None if np.isnan(dissimilarity) else dissimilarity,
        "n_detours": int(table["is_detour"].sum()),
        "n_dead_ends": int((table["kind"] == "dead_end").sum()),
        "censored_runs": censored_runs,
        "excluded_runs": excluded_runs,
        "unmeasured_runs": unmeasured_runs,
        "unmeasured_rule": UNMEASURED_RULE,
        "convergence": convergence,
    }


def _unfitted_table(visiting: np.ndarray, converged_visiting: np.ndarray) -> pd.DataFrame:
    """detours.csv before the fit: visits per state, dead ends (visited, but by no run
    that converges) marked, every coefficient NaN."""
    dead_end = (visiting > 0) & (converged_visiting == 0)
    return pd.DataFrame(
        {
            "state": np.arange(len(visiting)),
            "coefficient": np.nan,
            "std_error": np.nan,
            "p_value": np.nan,
            "runs_visiting": visiting,
            "is_detour": False,
            "converged_runs_visiting": converged_visiting,
            "kind": np.where(dead_end, "dead_end", ""),
            "coefficient_sd": np.nan,
            "convergence_if_stayed": np.nan,
        }
    )


def fit_detour_regression(
    occupancy: pd.DataFrame, convergence: pd.DataFrame, alpha: float
) -> tuple[pd.DataFrame, dict]:
    """OLS of convergence time on occupancy fractions, and the detour flags.

    occupancy: (runs, n_states) from ``occupancy_fractions``; convergence: from
    ``convergence_times``, indexed by seed (must cover every run in ``occupancy``).
    Returns the per-state table (``TABLE_COLUMNS``; NaN where not fitted, ``kind`` is
    ``detour``, ``dead_end`` or ``""``) and the summary (``r2, f_pvalue, n_runs,
    n_censored, alpha, significant, reason``, ...). Dead ends are marked even when the
    regression cannot be fitted; detours only when it is significant.
    """
    missing = occupancy.index.difference(convergence.index)
    if len(missing):
        raise ValueError(f"runs without a convergence time: {list(missing)}")
    conv = convergence.loc[occupancy.index]
    y = conv["convergence_step"].to_numpy(dtype=float)
    censored = conv["censored"].to_numpy(dtype=bool)
    fractions = occupancy.to_numpy(dtype=float)
    visits = fractions > 0
    visiting = visits.sum(axis=0)
    converged_visiting = visits[~censored].sum(axis=0)
    visited = np.flatnonzero(visiting > 0)
    table = _unfitted_table(visiting, converged_visiting)
    summary = regression_summary(len(y), alpha, y=y, censored=censored)
    design = fractions[:, visited]
    summary["reason"] = _why_not_interpretable(design, y, censored)
    if summary["reason"] is not None:
        return table, summary
    import statsmodels.api as sm  # ~0.8 s: only the regression job pays it, not every reader

    fit = sm.OLS(y - y.mean(), design, hasconst=True).fit()
    table.loc[visited, "coefficient"] = fit.params
    table.loc[visited, "std_error"] = fit.bse
    table.loc[visited, "p_value"] = fit.pvalues
    table["convergence_if_stayed"] = table["coefficient"] + y.mean()
    # sd > 0: _why_not_interpretable checked that the times differ.
    table["coefficient_sd"] = table["coefficient"] / summary["sd_convergence"]
    f_pvalue = float(fit.f_pvalue)
    significant = bool(f_pvalue < alpha)
    summary.update(r2=float(fit.rsquared), f_pvalue=f_pvalue, significant=significant)
    if not significant:
        summary["reason"] = f"model not significant: F-test p = {f_pvalue:.3g} >= alpha = {alpha}"
    # Optional for converging: some converged run visits it and another converges without it.
    optional = (converged_visiting > 0) & (converged_visiting < (~censored).sum())
    detour = significant & optional & (table["coefficient"] > 0).to_numpy()
    table["is_detour"] = detour
    table.loc[detour, "kind"] = "detour"
    return table, summary


def analyze_detours(
    states: pd.DataFrame,
    trajectories: pd.DataFrame,
    n_states: int,
    convergence: dict,
    alpha: float,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Everything ``fit_detour_regression`` writes, for one setting.

    states: ``seed, step, state`` (Viterbi paths); trajectories: every run, including
    those the HMM excluded; convergence: ``{column, threshold}`` and optionally
    ``direction`` (``above``, the default, or ``below``). Returns the per-state
    table, the summary (with ``dissimilarity``, censored and excluded runs) and the per-run
    table (``seed, convergence_step, censored, last_step, in_regression`` and the occupancy
    fraction of each state as ``state<k>``).
    """
    times = convergence_times(
        trajectories, convergence["column"], convergence["threshold"], direction(convergence)
    )
    unmeasured = unmeasured_runs(times, convergence["column"])
    occupancy = occupancy_fractions(states, n_states)
    occupancy = occupancy[~occupancy.index.isin(unmeasured)]
    table, summary = fit_detour_regression(occupancy, times, alpha)
    table["runs_visiting"] = runs_visiting(states, n_states)
    excluded = times.index.difference(occupancy.index).difference(unmeasured)
    in_regression = states[states["seed"].isin(occupancy.index)]
    if summary["r2"] is not None:
        summary.update(route_evidence(in_regression, times, n_states))
    censored = times.index[times["censored"] & times.index.isin(occupancy.index)]
    summary.update(
        run_summary(
            table,
            occupancy,
            states,
            censored_runs=censored.tolist(),
            excluded_runs=excluded.tolist(),
            unmeasured_runs=unmeasured,
            convergence=dict(convergence),
        )
    )
    runs = times.copy()
    runs["in_regression"] = runs.index.isin(occupancy.index)
    fractions = occupancy.reindex(runs.index).add_prefix("state")
    runs = runs.join(fractions).rename_axis("seed").reset_index()
    return table, summary, runs
