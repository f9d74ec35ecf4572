"""Resampled refits of the choice of K and of the map (``stability: {resamples: R}``).

The map a reader takes away must not hang on one arbitrary draw: which runs validate,
which seeds EM's restarts start from. Each resample r = 1..R redraws both and repeats the
whole selection: every candidate K is fitted on the resample's fit runs (restart seeds
derived from ``hmm.seed`` and r), scored on its validation runs, and the resample picks
the K with the lowest validation BIC; its model at that K then decodes every run. The
workflow's K is the one most resamples pick (trainmap.hmm.selection), and the kept map's
states, edges and detour calls get the share of resamples that find them again
(trainmap.maps.support), as a phylogenetic tree carries bootstrap supports.

Draws (``stability.method``):

- ``split`` (default): a fresh seeded fit/validation split of the runs, as
  ``hmm.val_fraction`` makes it;
- ``bootstrap``: the fit runs are drawn with replacement (as many as there are runs) and
  the runs never drawn validate (out of bag, about 37% of them).
"""

from typing import Any

import numpy as np
import pandas as pd

from trainmap.hmm import split
from trainmap.hmm.fit import fit_state_count, model_from_json
from trainmap.hmm.order import viterbi_paths
from trainmap.hmm.selection import lowest
from trainmap.hmm.sequences import observations
from trainmap.io.files import plain
from trainmap.seeding import derive_seed

METHODS = split.RESAMPLE_METHODS
ROW_SCORES = ("train_loglik", "val_loglik", "val_bic", "capped", "kept_restart")


class ResampleError(ValueError):
    """The runs cannot give the resamples asked for."""


def resample_seed(seed: int, resample: int) -> int:
    """The seed of resample r's draw of runs and of its restarts."""
    return derive_seed(seed, "resample", resample)


def draw_runs(runs: list, resample: int, *, method: str, val_fraction: float, seed: int):
    """``(fit_runs, val_runs)`` of resample r; bootstrap fit runs repeat (sorted)."""
    if method not in METHODS:
        raise ResampleError(f"stability.method: {method!r} is not one of {METHODS}")
    runs = sorted(runs)
    if method == "split":
        return split.split_runs(runs, val_fraction, resample_seed(seed, resample))
    rng = np.random.default_rng(resample_seed(seed, resample))
    drawn = sorted(runs[i] for i in rng.integers(0, len(runs), size=len(runs)))
    out_of_bag = sorted(set(runs) - set(drawn))
    if not out_of_bag:
        raise ResampleError(
            f"bootstrap resample {resample} drew every one of the {len(runs)} runs: none is "
            "left to validate; use stability.method: split or add runs"
        )
    return drawn, out_of_bag


def run_observations(table: pd.DataFrame, features: list[str], runs: list):
    """``(X, lengths)`` of ``runs`` in the given order, a run repeated as often as listed."""
    blocks = {run: block for run, block in table.groupby("seed", sort=False)}
    X = [blocks[run][features].to_numpy(dtype=np.float64) for run in runs]
    return np.concatenate(X), np.array([len(x) for x in X])


def fit_resample(
    table: pd.DataFrame,
    features: list[str],
    states: list[int],
    resample: int,
    *,
    method: str,
    val_fraction: float,
    options: dict[str, Any],
) -> dict[str, Any]:
    """One resample: every K fitted and scored, the pick, and every run decoded under it.

    ``table``: the prepared sequences (trainmap.hmm.sequences; its ``split`` is ignored);
    ``options``: ``fit_state_count``'s keyword options, ``seed`` the config's
    ``hmm.seed``. Returns ``resample``, ``method``, ``fit_runs``, ``val_runs``,
    ``scores`` (one row per K), ``n_states`` (the pick), ``model`` (the kept model at the
    pick, states in first-reach order) and ``states`` (its Viterbi state of every row of
    ``table``, in table order).
    """
    runs = sorted(pd.unique(table["seed"]).tolist())
    fit_runs, val_runs = draw_runs(
        runs, resample, method=method, val_fraction=val_fraction, seed=options["seed"]
    )
    fit, val = (
        run_observations(table, features, fit_runs),
        run_observations(table, features, val_runs),
    )
    seed = resample_seed(options["seed"], resample)
    fits = {k: fit_state_count(fit, val, k, features, **{**options, "seed": seed}) for k in states}
    scores = [{"n_states": k, **{key: fits[k][key] for key in ROW_SCORES}} for k in sorted(fits)]
    pick = lowest(scores, "val_bic")
    model = {key: value for key, value in fits[pick].items() if key != "restarts"}
    X, lengths = observations(table, features)
    paths = viterbi_paths(model_from_json(model), X, lengths)
    return {
        "resample": resample,
        "method": method,
        "fit_runs": plain(fit_runs),
        "val_runs": plain(val_runs),
        "scores": scores,
        "n_states": pick,
        "model": model,
        "states": np.concatenate(paths).astype(int).tolist(),
    }
