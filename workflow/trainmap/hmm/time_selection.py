"""Choosing K over time (``hmm.selection: time``): held-out blocks of consecutive
checkpoints, or the in-sample BIC of a run too short for them (docs/state_count.md,
"One run"; the blocks themselves: trainmap.hmm.blocks).

For each candidate K and fold b (one job per K does every fold, then the refit):

- **Fit** on every row fold b does not hold out, each maximal stretch of consecutive
  checkpoints its own sequence (per run, the stretches between its held-out blocks). The
  HMM never sees a transition across a removed block (the last checkpoint before it is
  not followed by the first after it), so no jump is learned that training never made;
  what it does not see either are the transitions into, within and out of the block.
- **Score** each held-out block by its predictive log-likelihood given everything
  before it in its run (held-out or not: observed data, conditioned on, never fitted),
  ``log p(x_block | x_before) = log p(x_before, x_block) - log p(x_before)``
  (forward algorithm). Scoring the block as a sequence of its own would score its first
  checkpoint under the start probabilities, which the fit learns from the starts of its
  stretches: a block that begins in a phase where no stretch begins would look nearly
  impossible for every K > 1, and K = 1 would win.
- **Block edges.** One run makes each change of phase once. A change that falls inside
  a held-out block or at its edge is never seen by the fold's fit, and EM gives a
  transition it never saw probability 0: the held-out block (and every later one, whose
  context crosses it) would be impossible under every K > 1. So the fold's model is
  scored with uniform start probabilities and its transitions smoothed,
  ``A' = (1 - eps) A + eps / K`` with eps = 1 / (the fold's fit rows): a change the fit
  could have seen at most once. An unseen change then costs about ln(K n) nats (n the
  fold's fit rows; 6.5 nats for K = 4 on 160 rows), a seen one what the fit gave it;
  K = 1 has no transitions and pays nothing. (Measured on a planted run of four phases
  over 200 checkpoints: unsmoothed, the true K = 4 scored worse on held-out blocks than
  K = 3, its fold fits having never seen the changes at checkpoints 100 and 150.)
- **BIC** of the fold: ``-2 sum log p(x_block | x_before) + p ln n``, n = the fold's
  held-out rows, p = the model's free parameters; AIC alike. **K = the lowest BIC summed
  over the folds** (as kfold sums over folds of runs); each fold's kept model is its
  restart with the best training log-likelihood (``hmm.keep_by``).
- **The map's model is refit on every checkpoint** (trainmap.hmm.kfold.refit_all_runs):
  the blocks only choose K.

Where the runs are too short for blocks (no ``block`` column, trainmap.hmm.blocks), every
restart is fit on every checkpoint and K is the lowest in-sample BIC
(``-2 log L + p ln n``, n = all rows): ``held_out`` says ``in-sample`` in k<K>.json and
selection.json.
"""

import copy
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM

from trainmap.hmm.blocks import BLOCKS, IN_SAMPLE, SELECTION
from trainmap.hmm.fit import fit_state_count, n_free_parameters
from trainmap.hmm.kfold import refit_all_runs
from trainmap.hmm.selected import VAL_SCORES, fit_all_runs
from trainmap.seeding import derive_seed


def block_seed(seed: int, block: int) -> int:
    """The seed of one fold's restarts."""
    return derive_seed(seed, "block", block)


def block_observations(table: pd.DataFrame, features: list[str], block: int):
    """``(fit, held, contexts)`` for fold ``block`` (the rows whose ``block`` it is).

    ``fit``: ``(X, lengths)`` of every row the fold does not hold out, each maximal
    stretch of consecutive checkpoints of a run its own sequence; ``held``: ``(X,
    lengths)`` of the held-out blocks, one sequence each; ``contexts``: per held-out
    block, the (rows, features) of its run before it. ``table`` sorted by seed and step.
    """
    if "block" not in table:
        raise ValueError("the sequences have no `block` column: prepare them with blocks")
    if block not in set(table["block"]):
        raise ValueError(f"block {block} is not among {sorted(set(table['block']))}")
    values = table[features].to_numpy(dtype=np.float64)
    seeds = pd.factorize(table["seed"])[0]
    held = (table["block"] == block).to_numpy()
    fit_parts, held_parts = _stretches(seeds, ~held), _stretches(seeds, held)
    run_start = np.searchsorted(seeds, seeds, side="left")  # seeds sorted: a run's first row
    contexts = [values[run_start[part[0]] : part[0]] for part in held_parts]
    return _stacked(values, fit_parts), _stacked(values, held_parts), contexts


def _stretches(seeds: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Row indices of each maximal stretch of consecutive ``mask`` rows within one run."""
    rows = np.flatnonzero(mask)
    breaks = (np.diff(rows) != 1) | (seeds[rows[1:]] != seeds[rows[:-1]])
    return np.split(rows, np.flatnonzero(breaks) + 1) if len(rows) else []


def _stacked(values: np.ndarray, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(X, lengths)`` of the parts, in order."""
    return values[np.concatenate(parts)], np.array([len(part) for part in parts])


def scoring_model(model: GaussianHMM, n_fit: int) -> GaussianHMM:
    """A copy of a fold's ``model`` to score held-out blocks with: uniform start
    probabilities and transitions ``(1 - eps) A + eps / K``, eps = 1 / ``n_fit`` (the
    fold's fit rows), so that a change of state the fit never saw is unlikely, not
    impossible (see the module docstring)."""
    scored = copy.deepcopy(model)
    k, eps = model.n_components, 1.0 / n_fit
    scored.startprob_ = np.full(k, 1.0 / k)
    scored.transmat_ = (1.0 - eps) * model.transmat_ + eps / k
    return scored


def held_out_loglik(
    model: GaussianHMM, held: tuple[np.ndarray, np.ndarray], contexts: list[np.ndarray]
) -> float:
    """Sum over the held sequences of log p(sequence | its context) (nats) under
    ``model`` as given: the forward log-likelihood of context and sequence less the
    context's, or the sequence's own where the context is empty."""
    X, lengths = held
    total = 0.0
    for rows, context in zip(np.split(X, np.cumsum(lengths)[:-1]), contexts, strict=True):
        total += model.score(np.concatenate([context, rows]))
        total -= model.score(context) if len(context) else 0.0
    return float(total)


def held_out_scores(model, *, fit, held, contexts) -> dict[str, float]:
    """``SCORES`` of one restart: training log-likelihood on the fit stretches, the held
    blocks' predictive log-likelihood, and its AIC and BIC (n = the held-out rows)."""
    loglik = held_out_loglik(scoring_model(model, len(fit[0])), held, contexts)
    p = n_free_parameters(model.n_components, model.n_features, model.covariance_type)
    return {
        "train_loglik": float(model.score(*fit)),
        "val_loglik": loglik,
        "val_aic": -2 * loglik + 2 * p,
        "val_bic": -2 * loglik + p * np.log(len(held[0])),
    }


def fit_block(
    table: pd.DataFrame, features: list[str], n_states: int, block: int, **options: Any
) -> dict[str, Any]:
    """One (K, fold) fit: ``fit_state_count`` on the rows fold ``block`` keeps, each
    restart scored on its held-out blocks given the rows before them
    (``held_out_scores``)."""
    fit, held, contexts = block_observations(table, features, block)
    scorer = partial(held_out_scores, fit=fit, held=held, contexts=contexts)
    options = {**options, "seed": block_seed(options["seed"], block)}
    result = fit_state_count(fit, held, n_states, features, scorer=scorer, **options)
    return {"fold": block, **result}


def in_sample_fit(
    table: pd.DataFrame, features: list[str], n_states: int, **options: Any
) -> dict[str, Any]:
    """``k<K>.json`` of runs too short for blocks: fit on every row, ``val_*`` the
    in-sample scores (``val_loglik`` = the training log-likelihood, BIC with n = all
    rows), for the kept model and every restart."""
    result = fit_all_runs(table, features, n_states, **options)
    n_rows, p = len(table), result["n_params"]
    for entry in [result, *result["restarts"]]:
        loglik = entry.get("train_loglik")
        if loglik is None:  # a failed restart
            entry.update(dict.fromkeys(VAL_SCORES))
            continue
        entry.update(
            val_loglik=loglik,
            val_aic=-2 * loglik + 2 * p,
            val_bic=-2 * loglik + p * float(np.log(n_rows)),
        )
    ok = [r for r in result["restarts"] if r.get("val_bic") is not None]
    for stat, reduce in (("mean", np.mean), ("sd", np.std)):
        result[stat].update({key: float(reduce([r[key] for r in ok])) for key in VAL_SCORES})
    result.update(selection=SELECTION, held_out=IN_SAMPLE, n_val_rows=n_rows)
    return result


def fit_over_time(
    table: pd.DataFrame, features: list[str], n_states: int, **options: Any
) -> dict[str, Any]:
    """``k<K>.json`` under ``selection: time``: every fold's fit, then the refit on every
    checkpoint carrying the blocks' summed scores (``cv``); ``in_sample_fit`` where the
    prepared table has no blocks."""
    if "block" not in table:
        return in_sample_fit(table, features, n_states, **options)
    blocks = sorted(int(b) for b in pd.unique(table["block"]))
    fits = [fit_block(table, features, n_states, b, **options) for b in blocks]
    result = refit_all_runs(table, features, n_states, fits, selection=SELECTION, **options)
    return {**result, "held_out": BLOCKS}
