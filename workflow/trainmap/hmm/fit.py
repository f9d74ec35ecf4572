"""Fit Gaussian HMMs for one state count K and persist them as data (METHOD.md section 4).

Each of ``restarts`` restarts runs Baum-Welch (hmmlearn) from its own seed
``derive_seed(seed, K, restart)`` on the fit runs and is scored on the validation runs
(log-likelihood, AIC, BIC; parameter counts and n from hmmlearn's ``aic``/``bic``). The
kept model is the restart with the best training log-likelihood (``keep_by:
train_loglik``, the default: EM's own objective, so the validation runs only choose K)
or, as in the paper, the best validation log-likelihood (``keep_by: val_loglik``, which
uses the validation runs twice: once to keep a restart per K, again to choose K). Its
states are numbered in the order runs first reach them (trainmap.hmm.order).

**Decision** (METHOD.md section 4): the fit is hmmlearn's Baum-Welch as it is, with
hmmlearn's own ``min_covar`` (added to the covariances at initialisation) and
``covars_prior`` semantics, so likelihoods and BICs compare with anyone's plain
``GaussianHMM`` fit. hmmlearn does not guard the covariances during EM, though: a state
that collapses onto fewer points than features gets a singular covariance, whose density
is infinite or whose Cholesky factorisation fails. EM is therefore run one iteration per
``fit`` call (hmmlearn continues from the current parameters when ``init_params`` is
empty; the iterations are those of one ``fit`` with ``n_iter``, and tests check the
parameters and scores equal a plain fit) and after every iteration a **covariance guard**
looks at every state's covariance:

- ``covariance_guard: singular`` (default) steps in only when a covariance is about to
  become numerically singular: an eigenvalue below ``RELATIVE_FLOOR`` (1e-12, about 4500
  times double precision's epsilon) times the state's largest eigenvalue is raised to
  that floor (full: the difference is added to the diagonal; diag: the variance is set).
  Covariances fitted to real variation never come near it, so on well-conditioned data
  the fit is exactly hmmlearn's. (With diagonal covariances hmmlearn's ``covars_prior``
  already keeps every variance at least 1e-2 / the state's posterior mass; with full ones
  it adds 1e-2 to every entry, a rank-one term, so a collapsing state still degenerates.)
- ``covariance_guard: absolute`` is the workflow's earlier rule: every eigenvalue (or
  variance) below ``min_covar`` (z units squared) is raised to it after every iteration.
  It keeps every state at least ``min_covar`` wide, but on per-run z-scored features it
  acts in almost every iteration and changes the fitted model (default parity setting,
  K = 8: training log-likelihood 16,261 against 34,081 with the singular guard, which
  never acted there; BENCHMARKS.md).

Every restart reports in how many iterations the guard acted and for which states
(``guard``); selection.json and the selection figure say so whenever it acted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from trainmap.hmm.order import number_by_first_reach
from trainmap.seeding import derive_seed

if TYPE_CHECKING:  # hmmlearn imports scikit-learn (~0.8 s): jobs that neither fit nor
    from hmmlearn.hmm import GaussianHMM  # decode do not pay for it

log = logging.getLogger(__name__)

COVARIANCES = ("full", "diag")
GUARDS = ("singular", "absolute")
SCORES = ("train_loglik", "val_loglik", "val_aic", "val_bic")
KEEP_BY = ("train_loglik", "val_loglik")
RELATIVE_FLOOR = 1e-12  # smallest eigenvalue / largest eigenvalue the singular guard allows
# hmmlearn's forward-backward with per-step scaling instead of log-space sums: the same
# EM to ~1e-11 in the log-likelihood and 1.5x faster on the default parity runs
# (BENCHMARKS.md), which pays for running EM to its tolerance and for the resamples.
IMPLEMENTATION = "scaling"


class HMMFitError(RuntimeError):
    """No restart for K produced a usable model."""


def n_free_parameters(n_states: int, n_features: int, covariance: str) -> int:
    """Free scalars of a Gaussian HMM: start (K-1), transitions K(K-1), means, covariances.

    The same count hmmlearn's ``aic``/``bic`` use (tests check it); stored for readers.
    """
    k, f = n_states, n_features
    per_state = {"full": f * (f + 1) // 2, "diag": f}[covariance]
    return (k - 1) + k * (k - 1) + k * f + k * per_state


def restart_seed(seed: int, n_states: int, restart: int) -> int:
    """The seed of one restart; reduced to 32 bits for NumPy's legacy RandomState."""
    return derive_seed(seed, n_states, restart) % 2**32


# fit_restart's defaults, and its options k<K>.json records (in the file's order)
EM_DEFAULTS = {"tol": 1e-2, "min_covar": 1e-3, "covariance_guard": "singular"}
EM_RECORDED = ("n_iter", "tol", "min_covar", "covariance_guard")


def fit_restart(
    X: np.ndarray,
    lengths: np.ndarray,
    n_states: int,
    *,
    covariance: str,
    n_iter: int,
    seed: int,
    tol: float = EM_DEFAULTS["tol"],
    min_covar: float = EM_DEFAULTS["min_covar"],
    covariance_guard: str = EM_DEFAULTS["covariance_guard"],
) -> tuple[GaussianHMM, dict[str, Any]]:
    """Baum-Welch from one seed with the covariance guard; returns (model, fit report).

    ``X``: (n_rows, n_features) observations of all fit runs, runs contiguous;
    ``lengths``: rows per run. Stops after ``n_iter`` iterations or when the
    log-likelihood improves by less than ``tol`` (hmmlearn's rule). ``min_covar`` is
    hmmlearn's (added at initialisation) and, with ``covariance_guard="absolute"``, the
    eigenvalue floor (see the module docstring). EM runs with ``IMPLEMENTATION``, and
    again from the start in log space where that underflows. The report has
    ``iterations``, ``converged``, ``implementation`` and ``guard``: ``{"rule",
    "iterations", "states"}`` (iterations after which the guard changed some covariance,
    and which states). Raises
    ``FloatingPointError`` when EM breaks down (a state without any posterior mass gives
    NaN parameters).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance: {covariance!r} is not one of {COVARIANCES}")
    if covariance_guard not in GUARDS:
        raise ValueError(f"covariance_guard: {covariance_guard!r} is not one of {GUARDS}")
    options = dict(covariance=covariance, n_iter=n_iter, seed=seed, tol=tol, min_covar=min_covar)
    try:
        return _em(X, lengths, n_states, covariance_guard, IMPLEMENTATION, **options)
    except ValueError as error:
        if "underflow" not in str(error):
            raise
        # Scaled forward-backward underflows where every state is wildly unlikely at
        # some row; the same restart in log space does not (hmmlearn's own advice).
        log.info("K=%d seed %d: %s; refit in log space", n_states, seed, error)
        return _em(X, lengths, n_states, covariance_guard, "log", **options)


def _em(X, lengths, n_states, covariance_guard, implementation, **options):
    """fit_restart's EM with one of hmmlearn's forward-backward implementations."""
    from hmmlearn.hmm import GaussianHMM

    model = GaussianHMM(
        n_components=n_states,
        covariance_type=options["covariance"],
        min_covar=options["min_covar"],
        n_iter=1,
        tol=options["tol"],
        random_state=options["seed"],
        init_params="stmc",
        params="stmc",
        implementation=implementation,
    )
    history: list[float] = []
    floored_steps, floored_states = 0, set()
    tol = options["tol"]
    for _ in range(options["n_iter"]):
        model.fit(X, lengths)
        model.init_params = ""  # continue EM from the current parameters
        history.append(float(model.monitor_.history[-1]))
        _check_finite(model)
        floor = options["min_covar"] if covariance_guard == "absolute" else None
        states = _floor_covariances(model, floor)
        if states:
            floored_steps += 1
            floored_states.update(states)
        if len(history) >= 2 and history[-1] - history[-2] < tol:
            break
    report = {
        "iterations": len(history),
        "converged": len(history) >= 2 and history[-1] - history[-2] < tol,
        "implementation": implementation,
        "guard": {
            "rule": covariance_guard,
            "iterations": floored_steps,
            "states": sorted(floored_states),
        },
    }
    return model, report


def score_model(
    model: GaussianHMM, fit: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """``train_loglik`` on the fit runs and ``val_loglik, val_aic, val_bic`` on validation.

    Log-likelihoods are totals (nats) over all rows; AIC/BIC are hmmlearn's, with
    n = validation rows.
    """
    return {
        "train_loglik": float(model.score(*fit)),
        "val_loglik": float(model.score(*val)),
        "val_aic": float(model.aic(*val)),
        "val_bic": float(model.bic(*val)),
    }


def fit_state_count(
    fit: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    n_states: int,
    features: list[str],
    *,
    restarts: int,
    seed: int,
    keep_by: str = "train_loglik",
    scorer: Callable[[GaussianHMM], dict[str, float]] | None = None,
    **em: Any,
) -> dict[str, Any]:
    """All restarts for one K; the JSON-ready ``k<K>.json`` (kept model, every restart).

    ``fit``/``val``: ``(X, lengths)`` as from ``sequences.observations``. A restart whose
    EM breaks down is recorded with its error and null scores; if all do, HMMFitError.
    ``keep_by``: the score that picks the kept restart (``KEEP_BY``). Every restart's
    states are numbered in first-reach order over the fit and validation runs before it
    is scored (``state_order``: EM's label of each new state). ``guard`` summarises the
    covariance guard: its rule, the kept restart's count and the per-restart counts of
    iterations in which it acted (null for failed restarts); ``capped``: restarts that
    stopped at ``n_iter`` before EM met ``tol``. ``scorer``: model -> ``SCORES``, in place
    of ``score_model(model, fit, val)`` (held-out blocks, trainmap.hmm.time_selection).
    ``em``: ``fit_restart``'s options (``covariance`` and ``n_iter`` required, the others
    at its defaults).
    """
    if keep_by not in KEEP_BY:
        raise ValueError(f"keep_by: {keep_by!r} is not one of {KEEP_BY}")
    options = {**EM_DEFAULTS, **em}
    covariance, covariance_guard = options["covariance"], options["covariance_guard"]
    everything = np.concatenate([fit[0], val[0]]), np.concatenate([fit[1], val[1]])
    runs, models = [], []
    for restart in range(restarts):
        entry, model = _fit_one_restart(
            fit, val, everything, n_states, restart, seed, options, scorer=scorer
        )
        runs.append(entry)
        models.append(model)
    ok = [r for r in runs if r["error"] is None]
    if not ok:
        raise HMMFitError(f"K={n_states}: all {restarts} restarts failed: {runs[0]['error']}")
    best = max(ok, key=lambda r: r[keep_by])  # first of equals: lowest restart index
    result = model_to_json(models[best["restart"]], features)
    result.update({name: best[name] for name in SCORES})
    result.update(_kept_restart(best, runs, keep_by, covariance_guard))
    result.update(
        n_params=n_free_parameters(n_states, len(features), covariance),
        n_fit_rows=int(len(fit[0])),
        n_val_rows=int(len(val[0])),
        options={"restarts": restarts, **{k: options[k] for k in EM_RECORDED}, "seed": seed,
                 "keep_by": keep_by},
        restarts=runs,
        n_failed=restarts - len(ok),
        mean={name: float(np.mean([r[name] for r in ok])) for name in SCORES},
        sd={name: float(np.std([r[name] for r in ok])) for name in SCORES},
    )  # fmt: skip
    return result


def _fit_one_restart(
    fit, val, everything, n_states: int, restart: int, seed: int, options, scorer=None
):
    """One restart of ``fit_state_count``: (its k<K>.json entry, the model or None).

    The model's states are numbered in first-reach order over ``everything`` (fit and
    validation runs) before scoring (``scorer``, else ``score_model``); a restart whose EM
    breaks down, or whose scores are not finite, is recorded with its error and null
    scores."""
    entry: dict[str, Any] = {"restart": restart, "seed": restart_seed(seed, n_states, restart)}
    try:
        model, report = fit_restart(*fit, n_states, seed=entry["seed"], **options)
        # Scored and decoded in log space, as a model rebuilt from its JSON is.
        model.implementation = "log"
        model, order = number_by_first_reach(model, *everything)
        guarded = report["guard"]["states"]
        report["guard"]["states"] = sorted(order.index(k) for k in guarded)
        scores = scorer(model) if scorer else score_model(model, fit, val)
        if not np.isfinite(list(scores.values())).all():
            raise FloatingPointError(f"non-finite scores {scores}")
        entry.update(scores, **report, state_order=order, error=None)
    except (FloatingPointError, ValueError, np.linalg.LinAlgError) as error:
        log.warning("K=%d restart %d failed: %s", n_states, restart, error)
        model = None
        entry.update(dict.fromkeys(SCORES), error=f"{type(error).__name__}: {error}")
    return entry, model


def _kept_restart(best: dict, runs: list[dict], keep_by: str, covariance_guard: str) -> dict:
    """Which restart was kept and why, its state order, how many restarts stopped at
    ``n_iter``, and the covariance guard's work (k<K>.json keys, in the file's order)."""
    ok = [r for r in runs if r["error"] is None]
    return {
        "kept_restart": best["restart"],
        "kept_by": keep_by,
        "state_order": best["state_order"],
        "capped": sum(not r["converged"] for r in ok),
        "guard": {
            "rule": covariance_guard,
            "iterations": best["guard"]["iterations"],
            "states": best["guard"]["states"],
            "per_restart": [r["guard"]["iterations"] if r["error"] is None else None for r in runs],
        },
    }


def model_to_json(model: GaussianHMM, features: list[str]) -> dict[str, Any]:
    """Parameters as plain lists: startprob (K,), transmat (K, K), means (K, F),
    covars (K, F, F) for full or (K, F) for diag."""
    covars = model.covars_  # hmmlearn returns full matrices for every covariance type
    if model.covariance_type == "diag":
        covars = np.diagonal(covars, axis1=1, axis2=2)
    return {
        "n_states": int(model.n_components),
        "covariance": model.covariance_type,
        "features": list(features),
        "startprob": model.startprob_.tolist(),
        "transmat": model.transmat_.tolist(),
        "means": model.means_.tolist(),
        "covars": np.asarray(covars).tolist(),
    }


def model_from_json(data: dict[str, Any]) -> GaussianHMM:
    """Rebuild the model of ``model_to_json``/``k<K>.json``; it scores identically."""
    from hmmlearn.hmm import GaussianHMM

    model = GaussianHMM(
        n_components=data["n_states"],
        covariance_type=data["covariance"],
        init_params="",
        params="stmc",
    )
    model.startprob_ = np.asarray(data["startprob"], dtype=np.float64)
    model.transmat_ = np.asarray(data["transmat"], dtype=np.float64)
    model.means_ = np.asarray(data["means"], dtype=np.float64)
    model.covars_ = np.asarray(data["covars"], dtype=np.float64)
    model.n_features = model.means_.shape[1]
    return model


def _check_finite(model: GaussianHMM) -> None:
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        if not np.isfinite(getattr(model, name)).all():
            raise FloatingPointError(
                f"EM produced non-finite {name.rstrip('_')} (a state lost all posterior mass)"
            )


def _floor_covariances(model: GaussianHMM, floor: float | None) -> list[int]:
    """Raise too small covariance eigenvalues; returns the states changed.

    ``floor``: an absolute eigenvalue floor, or None for the singular guard (per state,
    ``RELATIVE_FLOOR`` times its largest eigenvalue). Full: the difference to the smallest
    eigenvalue is added to the diagonal. Diagonal: variances below the floor are set to it.
    """
    if model.covariance_type == "diag":
        variances = np.diagonal(model.covars_, axis1=1, axis2=2)
        floors = _floors(variances.max(axis=1), floor)
        low = np.flatnonzero((variances < floors[:, None]).any(axis=1))
        if low.size:
            model.covars_ = np.maximum(variances, floors[:, None])
        return low.tolist()
    covars = model.covars_
    eigenvalues = np.linalg.eigvalsh(covars)  # ascending, per state
    floors = _floors(eigenvalues[:, -1], floor)
    low = np.flatnonzero(eigenvalues[:, 0] < floors)
    if low.size:
        shift = np.zeros(len(covars))
        shift[low] = floors[low] - eigenvalues[low, 0]
        model.covars_ = covars + shift[:, None, None] * np.eye(covars.shape[1])
    return low.tolist()


def _floors(largest: np.ndarray, floor: float | None) -> np.ndarray:
    """Per-state eigenvalue floor: the absolute ``floor``, or ``RELATIVE_FLOOR`` times the
    largest eigenvalue (times 1, in squared data units, when a state has no spread)."""
    if floor is not None:
        return np.full(len(largest), floor)
    return RELATIVE_FLOOR * np.where(largest > 0, largest, 1.0)
