"""The HMM's fit/validation split of runs, and its size predicted from the config.

``prepare_sequences`` splits the runs (``split_runs``) and refuses a validation split of
fewer than ``MIN_VAL_ROWS`` rows. For a trained setting the seeds, ``hmm.val_fraction``,
``epochs`` and the checkpoint interval already say how many rows the split will have, and
for a checkpoint series its steps do, so config validation refuses a split that is too
small before any run trains (``check_predicted_split``). The prediction assumes no run
diverges: a diverged run only makes the split smaller, so a refused split is never a
false alarm.
"""

import math

import numpy as np

from trainmap.errors import ConfigError
from trainmap.seeding import derive_seed

# K is chosen by validation likelihood: below this many validation rows the choice is
# noise (it flipped with hmm.seed on 1-3 rows); a run needs two checkpoints for a transition.
MIN_VAL_ROWS = 10
MIN_RUN_CHECKPOINTS = 2


RESAMPLE_METHODS = ("split", "bootstrap")


class SplitError(ValueError):
    """Fewer than two runs: nothing to fit with and validate on."""


def n_validation_runs(n_runs: int, val_fraction: float) -> int:
    """``round(val_fraction * n)`` (halves up), clipped to [1, n - 1] so that neither set
    is empty (40 runs at 0.2 -> 8; 5 runs at 0.1 -> 1)."""
    return min(max(math.floor(val_fraction * n_runs + 0.5), 1), n_runs - 1)


def split_runs(
    runs: list, val_fraction: float, seed: int, n_excluded: int = 0
) -> tuple[list, list]:
    """Sorted (fit, validation) runs: a seeded shuffle of the sorted run list, the first
    ``n_validation_runs`` of it validating."""
    runs = sorted(runs)
    n = len(runs)
    if n < 2:
        note = f" ({n_excluded} excluded as diverged)" if n_excluded else ""
        raise SplitError(
            f"{n} usable run(s){note}: need at least 2, one to fit and one to validate; "
            "for one run use hmm.selection: time (K chosen on blocks of its checkpoints)"
        )
    n_val = n_validation_runs(n, val_fraction)
    order = np.random.default_rng(derive_seed("split", seed)).permutation(n)
    val = sorted(runs[i] for i in order[:n_val])
    fit = [runs[i] for i in sorted(order[n_val:])]
    return fit, val


def trained_checkpoints(params: dict, n_train: int | None) -> tuple[int, str] | None:
    """Checkpoints a trained run logs when it does not diverge, and how that follows from
    the keys (train.py: step 0, every ``eval_every`` epochs or steps, and the last step);
    None where the number of steps is not known before training.

    n_train: training examples per epoch (the task's ``train_examples()``), None where
    only the data tells."""
    every, unit = params["eval_every"], params["eval_unit"]
    if unit == "epoch":
        total, how = params["epochs"], f"epochs {params['epochs']}"
    else:
        if n_train is None:
            return None
        per_epoch = math.ceil(n_train / params["batch_size"])
        total = per_epoch * params["epochs"]
        how = f"{params['epochs']} epoch(s) x {per_epoch} steps"
    count = 1 + total // every + (1 if total % every else 0)
    return count, f"{how}, eval_every {every} {unit}(s): {count} checkpoints per run"


def check_predicted_split(
    checkpoints: dict[int, int], hmm: dict, where: str, how: str, more: str
) -> None:
    """Refuse a validation split that ``prepare_sequences`` would refuse after training.

    checkpoints: run -> checkpoints it will have; ``how``: where those counts come from;
    ``more``: the keys that give a run more checkpoints. Raises ConfigError naming the
    numbers and the keys to change.
    """
    if len(checkpoints) < 2:
        raise ConfigError(
            f"{where}.seeds: {len(checkpoints)} run(s); the HMM needs at least 2, "
            "one to fit and one to validate"
        )
    cap = hmm["max_checkpoints"]
    rows = {run: min(n, cap) for run, n in checkpoints.items()}
    capped = ""
    if any(n > cap for n in checkpoints.values()):
        capped = f", cut to hmm.max_checkpoints {cap}"
    short = sorted(run for run, n in rows.items() if n < MIN_RUN_CHECKPOINTS)
    if short:
        raise ConfigError(
            f"{where}: run(s) {short[:5]} will have fewer than {MIN_RUN_CHECKPOINTS} "
            f"checkpoints ({how}{capped}); a run needs two for the HMM to see a transition"
        )
    fit, val = split_runs(list(rows), hmm["val_fraction"], hmm["seed"])
    n_val_rows = sum(rows[run] for run in val)
    if n_val_rows < MIN_VAL_ROWS:
        raise ConfigError(
            f"{where}: the validation split will have {n_val_rows} rows ({len(val)} of "
            f"{len(rows)} runs at hmm.val_fraction {hmm['val_fraction']}; {how}{capped}); "
            f"choosing K needs at least {MIN_VAL_ROWS}: raise hmm.val_fraction or seeds, "
            f"or {more}"
        )
    n_fit_rows = sum(rows[run] for run in fit)
    too_many = sorted(k for k in hmm["states"] if k > n_fit_rows)
    if too_many:
        raise ConfigError(
            f"{where}.hmm.states: K={too_many} exceed the {n_fit_rows} fit rows the runs "
            f"will have ({len(fit)} runs; {how}{capped}); lower the state counts, add "
            f"seeds, or {more}"
        )


def distinct_draws(n_runs: int, method: str, val_fraction: float) -> int:
    """How many different draws of runs a resample ``method`` can make from ``n_runs``
    runs: a split chooses its validation runs; a bootstrap draw is a multiset of n of n."""
    if method == "split":
        return math.comb(n_runs, n_validation_runs(n_runs, val_fraction))
    return math.comb(2 * n_runs - 1, n_runs)


def check_resamples(checkpoints: dict, stability: dict, hmm: dict, where: str) -> None:
    """Refuse resamples the runs cannot give (trainmap.hmm.resample).

    checkpoints: run -> checkpoints it will have (or None where unknown). Raises
    ConfigError naming ``stability.resamples`` when R exceeds the distinct draws of the
    runs or K is chosen over time (``hmm.selection: time``, one run), and
    ``stability.method`` when the runs are too few for it.
    """
    n_resamples, method = stability["resamples"], stability["method"]
    if not n_resamples:
        return
    n_runs = len(checkpoints)
    if hmm.get("selection") == "time":
        why = "the setting has one run" if n_runs == 1 else "hmm.selection is time"
        raise ConfigError(
            f"{where}.stability.resamples: {n_resamples} resamples redraw which runs fit and "
            f"which validate, but {why}: K is chosen on blocks of checkpoints over time "
            f"(docs/state_count.md, One run); set {where}.stability.resamples: 0"
        )
    if n_runs < 2:
        raise ConfigError(
            f"{where}.stability.resamples: {n_resamples} resamples need at least 2 runs, one "
            f"to fit and one to validate; the setting has {n_runs}"
        )
    possible = distinct_draws(n_runs, method, hmm["val_fraction"])
    if n_resamples > possible:
        raise ConfigError(
            f"{where}.stability.resamples: {n_resamples} resamples, but {n_runs} runs give "
            f"only {possible} distinct {method} draws (hmm.val_fraction "
            f"{hmm['val_fraction']}); lower stability.resamples or add runs"
        )
    rows = sorted(min(n, hmm["max_checkpoints"]) for n in checkpoints.values() if n is not None)
    n_val = n_validation_runs(n_runs, hmm["val_fraction"])
    if method == "split" and rows and sum(rows[:n_val]) < MIN_VAL_ROWS:
        raise ConfigError(
            f"{where}.stability.resamples: a resample that validates on the {n_val} shortest "
            f"runs has {sum(rows[:n_val])} validation rows; choosing K needs at least "
            f"{MIN_VAL_ROWS}: raise hmm.val_fraction or add runs or checkpoints"
        )
    if method == "bootstrap" and rows:
        # The expected share of runs no bootstrap draw picks: (1 - 1/n)^n (-> 1/e).
        expected = (1 - 1 / n_runs) ** n_runs * n_runs * rows[0]
        if expected < MIN_VAL_ROWS:
            raise ConfigError(
                f"{where}.stability.method: bootstrap validates on the runs a draw leaves "
                f"out, about {expected:.1f} rows here; choosing K needs at least "
                f"{MIN_VAL_ROWS}: use method split or add runs"
            )
