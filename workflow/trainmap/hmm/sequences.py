"""Prepare HMM input from a setting's trajectories (METHOD.md section 3).

Runs are sorted, truncated to the first ``max_checkpoints`` checkpoints, diverged runs are
left out (and listed), every feature is z-scored within each run (the paper) or over all
included runs pooled (``normalize: global``), and the runs are split into fit and
validation sets. Every check that would make a fit impossible runs here, before any fit.

With ``folds`` (``hmm.selection: kfold``) the runs are dealt into folds instead
(``fold_runs``): the table gets a ``fold`` column (the fold that validates the run) and
every run is ``fit``, as the kept model is refit on all runs (trainmap.hmm.kfold).
With ``blocks`` (``hmm.selection: time``, trainmap.hmm.blocks) every run is ``fit`` and,
where the runs are long enough, a ``block`` column says which block of consecutive
checkpoints of its run each row is in; without that column K comes from the in-sample BIC.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trainmap.hmm import blocks as time_blocks
from trainmap.hmm import split
from trainmap.hmm.adequacy import step_grid_note
from trainmap.io.biases import BiasFeatureError, bias_note, usable_features
from trainmap.io.divergence import divergence, loss_columns
from trainmap.io.files import plain
from trainmap.seeding import derive_seed

log = logging.getLogger(__name__)

NORMALIZATIONS = ("per_run", "global")
ID_COLUMNS = ("seed", "step", "split", "fold", "block")
# Below MIN_VAL_ROWS validation rows the choice of K is noise (trainmap.hmm.split).
MIN_VAL_ROWS = split.MIN_VAL_ROWS
MIN_RUN_CHECKPOINTS = split.MIN_RUN_CHECKPOINTS


class SequenceError(ValueError):
    """The runs cannot be fitted as configured (too few runs, K too large, ...)."""


@dataclass
class Prepared:
    """The prepared sequences and what was done to get them.

    ``table``: columns ``seed, step, split`` (``fit`` | ``val``) then the z-scored
    features, sorted by seed and step. ``excluded``: ``{"seed", "reason"}`` per run left
    out. ``constant_features``: feature -> runs in which it was constant (z set to 0).
    ``bias_free_runs``: runs whose model has no biases (trainmap.io.biases);
    ``left_out_features``: the bias metrics the default features left out for them.
    """

    table: pd.DataFrame
    features: list[str]
    normalize: str
    fit_runs: list
    val_runs: list
    excluded: list[dict[str, Any]] = field(default_factory=list)
    constant_features: dict[str, list] = field(default_factory=dict)
    folds: list[list] | None = None  # selection kfold: the runs of each fold, sorted
    bias_free_runs: list = field(default_factory=list)
    left_out_features: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the data cannot carry (adequacy)
    time: dict[str, Any] | None = None  # selection time: the blocks, or why in-sample
    # normalize global: {"mean": {feature: value}, "sd": {feature: value}} in the features'
    # own units (sd 0: constant, z = 0), what a live map z-scores a new run's rows with.
    scale: dict[str, dict[str, float]] | None = None

    def report(self) -> dict[str, Any]:
        """JSON-ready summary (``prepare.json``)."""
        rows = self.table["split"].value_counts()
        extra = {} if self.folds is None else {"folds": [plain(f) for f in self.folds]}
        extra.update({} if self.time is None else {"time": self.time})
        return {
            "normalize": self.normalize,
            "features": self.features,
            "fit_runs": plain(self.fit_runs),
            "val_runs": plain(self.val_runs),
            "excluded": [{**e, "seed": plain(e["seed"])} for e in self.excluded],
            "constant_features": {k: plain(v) for k, v in self.constant_features.items()},
            "n_fit_rows": int(rows.get("fit", 0)),
            "n_val_rows": int(rows.get("val", 0)),
            "bias_free_runs": plain(self.bias_free_runs),
            "left_out_features": self.left_out_features,
            "notes": self.notes,
            **({} if self.scale is None else {"scale": self.scale}),
            **extra,
        }


def prepare_sequences(
    trajectories: pd.DataFrame,
    features: list[str],
    *,
    max_checkpoints: int,
    normalize: str,
    val_fraction: float,
    seed: int,
    states: list[int] | None = None,
    folds: int | None = None,
    blocks: int | None = None,
    features_given: bool = True,
) -> Prepared:
    """Truncate, exclude diverged runs, z-score and split (METHOD.md sections 3-4).

    ``trajectories``: one row per (seed, step) with the feature columns and optionally a
    boolean ``diverged`` column; a run also counts as diverged when any of its feature
    values is NaN or infinite at any step (also beyond ``max_checkpoints``).
    ``states``: candidate K; each must not exceed the number of fit observations.
    ``folds``: deal the runs into this many folds (``fold_runs``) instead of the split.
    ``blocks``: ``selection: time``: cut each run into this many blocks of consecutive
    checkpoints instead (trainmap.hmm.blocks); one run is enough.
    ``features_given``: the setting named its features; False for the default list, from
    which the bias metrics are left out when some run's model has no biases (a given
    list that names them is refused: trainmap.io.biases).
    """
    if normalize not in NORMALIZATIONS:
        raise SequenceError(f"hmm.normalize: {normalize!r} is not one of {NORMALIZATIONS}")
    missing = [c for c in ["seed", "step", *features] if c not in trajectories.columns]
    if missing:
        raise SequenceError(f"trajectories: missing columns {missing}")
    runs = trajectories.sort_values(["seed", "step"], kind="stable")
    try:
        usable, bias_free = usable_features(runs, features, features_given)
    except BiasFeatureError as error:
        raise SequenceError(str(error)) from None
    left_out = [f for f in features if f not in usable]
    features = usable
    _check_measured(runs, features, features_given)
    excluded = _diverged_runs(runs, features)
    kept = runs[~runs["seed"].isin([e["seed"] for e in excluded])]
    kept = kept.groupby("seed", sort=True).head(max_checkpoints)
    _check_run_lengths(kept)
    notes = _notes(kept, bias_free, runs["seed"].nunique(), left_out)
    included = sorted(kept["seed"].unique().tolist())
    if folds is not None or blocks is not None:
        how = _prepare_folds if blocks is None else _prepare_blocks
        prepared = how(kept, features, normalize, included, folds or blocks, seed, excluded, states)
        prepared.bias_free_runs, prepared.left_out_features = bias_free, left_out
        prepared.notes = notes + prepared.notes
        return prepared
    fit_runs, val_runs = split_runs(included, val_fraction, seed, n_excluded=len(excluded))
    _check_validation_rows(kept, val_runs, val_fraction)
    table, constant, scale = _split_table(kept, features, normalize, val_runs)
    prepared = Prepared(table, list(features), normalize, fit_runs, val_runs, excluded, constant)
    prepared.bias_free_runs, prepared.left_out_features = bias_free, left_out
    prepared.notes, prepared.scale = notes, scale
    if states:
        check_state_counts(states, int((table["split"] == "fit").sum()))
    return prepared


def _split_table(
    kept: pd.DataFrame, features: list[str], normalize: str, val_runs: list
) -> tuple[pd.DataFrame, dict, dict | None]:
    """sequences.parquet of the split: seed, step, split (fit | val) and the z-scored
    features; the features constant within a run or overall, and the global scale
    (``_zscore``)."""
    z, constant, scale = _zscore(kept, features, normalize)
    table = pd.DataFrame(
        {
            "seed": kept["seed"].to_numpy(),
            "step": kept["step"].to_numpy(),
            "split": np.where(kept["seed"].isin(val_runs), "val", "fit"),
        }
    )
    table[features] = z
    return table, constant, scale


def _notes(kept: pd.DataFrame, bias_free: list, n_runs: int, left_out: list[str]) -> list[str]:
    """What the data cannot carry: bias metrics left out (models without biases), runs
    logged on different step grids (also logged as a warning)."""
    notes = [bias_note(bias_free, n_runs, left_out)] if left_out else []
    grids = step_grid_note(kept)
    if grids:
        log.warning("%s", grids)
        notes.append(grids)
    return notes


def split_runs(
    runs: list, val_fraction: float, seed: int, n_excluded: int = 0
) -> tuple[list, list]:
    """Sorted (fit, validation) runs (trainmap.hmm.split, which config validation
    also uses to predict the split's size)."""
    try:
        return split.split_runs(runs, val_fraction, seed, n_excluded)
    except split.SplitError as error:
        raise SequenceError(str(error)) from None


def fold_runs(runs: list, folds: int, seed: int, n_excluded: int = 0) -> list[list]:
    """The runs dealt into ``folds`` folds: a seeded shuffle of the sorted run list, run i
    of the shuffle to fold i mod ``folds``; each fold sorted. Every run is in exactly one
    fold; fold sizes differ by at most one (40 runs, 5 folds -> 8 each)."""
    runs = sorted(runs)
    if not 2 <= folds <= len(runs):
        note = f" ({n_excluded} excluded as diverged)" if n_excluded else ""
        raise SequenceError(
            f"hmm.folds: {folds} folds need between 2 and the number of runs, and there are "
            f"{len(runs)} usable run(s){note}; lower hmm.folds or use selection: split"
        )
    order = np.random.default_rng(derive_seed("folds", seed)).permutation(len(runs))
    return [sorted(runs[i] for i in order[f::folds]) for f in range(folds)]


def _prepare_folds(kept, features, normalize, included, folds, seed, excluded, states):
    """``prepare_sequences`` for ``selection: kfold``: every run fit, a ``fold`` column."""
    dealt = fold_runs(included, folds, seed, n_excluded=len(excluded))
    fold_of = {run: f for f, members in enumerate(dealt) for run in members}
    z, constant, scale = _zscore(kept, features, normalize)
    table = pd.DataFrame(
        {
            "seed": kept["seed"].to_numpy(),
            "step": kept["step"].to_numpy(),
            "split": "fit",
            "fold": kept["seed"].map(fold_of).to_numpy(np.int64),
        }
    )
    table[features] = z
    rows = table.groupby("fold").size()
    for fold, members in enumerate(dealt):
        if rows[fold] < MIN_VAL_ROWS:
            raise SequenceError(
                f"fold {fold} validates {rows[fold]} rows (run(s) {plain(members[:5])}); "
                f"choosing K needs at least {MIN_VAL_ROWS} per fold: lower hmm.folds "
                f"(now {folds}), add runs, or log more checkpoints per run"
            )
    if states:
        check_state_counts(states, int(len(table) - rows.max()))
    prepared = Prepared(table, list(features), normalize, included, [], excluded, constant, dealt)
    prepared.scale = scale
    return prepared


def _prepare_blocks(kept, features, normalize, included, blocks, seed, excluded, states):
    """``prepare_sequences`` for ``selection: time``: every run fit, a ``block`` column
    where the runs are long enough for held-out blocks (``time`` says which, and why)."""
    lengths = kept.groupby("seed", sort=True).size().to_numpy().tolist()
    note = f" ({len(excluded)} run(s) excluded as diverged)" if excluded else ""
    problem = time_blocks.time_problem(lengths, states or [], blocks)
    if problem:
        raise SequenceError(
            f"hmm.selection time: {problem}{note}; log more checkpoints (steps:, or more "
            "rows per run), raise hmm.max_checkpoints if it cuts the run, or lower hmm.states"
        )
    z, constant, scale = _zscore(kept, features, normalize)
    table = pd.DataFrame(
        {"seed": kept["seed"].to_numpy(), "step": kept["step"].to_numpy(), "split": "fit"}
    )
    reason = time_blocks.in_sample_reason(lengths, blocks)
    time = {"selection": time_blocks.SELECTION, "blocks": blocks, "in_sample": reason}
    if reason is None:
        table["block"] = np.concatenate([time_blocks.block_index(n, blocks) for n in lengths])
        time["held_out_rows"] = time_blocks.held_out_rows(lengths, blocks)
        time["block_steps"] = _block_steps(table)
    table[features] = z
    prepared = Prepared(table, list(features), normalize, included, [], excluded, constant)
    prepared.time, prepared.scale = time, scale
    if reason:
        log.warning("%s", reason)
        prepared.notes.append(reason)
    return prepared


def _block_steps(table: pd.DataFrame) -> dict[str, list[list[int]]]:
    """Per run (as a string key, for JSON): each block's first and last step."""
    spans = table.groupby(["seed", "block"], sort=True)["step"].agg(["min", "max"])
    out: dict[str, list[list[int]]] = {}
    for (run, _), row in spans.iterrows():
        out.setdefault(str(plain(run)), []).append([int(row["min"]), int(row["max"])])
    return out


def _check_run_lengths(kept: pd.DataFrame) -> None:
    lengths = kept.groupby("seed", sort=True).size()
    short = lengths[lengths < MIN_RUN_CHECKPOINTS]
    if len(short):
        runs = [plain(r) for r in short.index[:5]]
        rows = ", ".join(str(int(n)) for n in short.to_numpy()[:5])
        raise SequenceError(
            f"run(s) {runs} have fewer than {MIN_RUN_CHECKPOINTS} checkpoints "
            f"({len(short)} in all; rows: {rows}): a run needs at least two for the HMM to "
            "see a transition; log more checkpoints, or leave those runs out (their seed "
            "folders of a runs directory, their rows of a table)"
        )


def _check_measured(runs: pd.DataFrame, features: list[str], given: bool) -> None:
    """Features NaN at every checkpoint of every run were never measured: each run would
    be left out as diverged ("0 usable runs"); name them instead."""
    values = runs[features].to_numpy(dtype=np.float64)
    never = [f for f, nan in zip(features, np.isnan(values).all(axis=0), strict=True) if nan]
    if not never:
        return
    which = "features" if given else "default features (the 14 weight metrics)"
    raise SequenceError(
        f"{which} {never} are NaN at every checkpoint of every run: nothing was measured. "
        "Check that the runs log them (a Recorder whose weight selection matched "
        "nothing?), or name the features the runs do log (features:)"
    )


def _check_validation_rows(kept: pd.DataFrame, val_runs: list, val_fraction: float) -> None:
    n_rows = int(kept["seed"].isin(val_runs).sum())
    if n_rows < MIN_VAL_ROWS:
        raise SequenceError(
            f"the validation split has {n_rows} rows ({len(val_runs)} run(s) "
            f"{plain(val_runs[:5])}); choosing K needs at least {MIN_VAL_ROWS}: raise "
            f"hmm.val_fraction (now {val_fraction}), add runs, or log more checkpoints per run"
        )


def check_state_counts(states: list[int], n_fit_rows: int) -> None:
    """Every candidate K needs at least K fit observations (k-means initialisation)."""
    too_many = sorted(k for k in states if k > n_fit_rows)
    if too_many:
        raise SequenceError(
            f"hmm.states: K={too_many} exceed the {n_fit_rows} fit observations; "
            "lower the candidate state counts or add runs/checkpoints"
        )


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a prepared table: all but ``seed, step, split``, in order."""
    return [c for c in table.columns if c not in ID_COLUMNS]


def observations(table: pd.DataFrame, features: list[str], split: str | None = None):
    """``(X, lengths)`` for hmmlearn: X (n_rows, n_features) float64, one length per run.

    ``split``: ``"fit"``, ``"val"`` or None for all runs. Rows stay in table order
    (sorted by seed, step), so the runs are contiguous.
    """
    if split is not None:
        table = table[table["split"] == split]
    lengths = table.groupby("seed", sort=False).size().to_numpy()
    return table[features].to_numpy(dtype=np.float64), lengths


def _diverged_runs(runs: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Runs with non-finite features (anywhere) or flagged ``diverged``, with a reason
    that names the columns and the first step."""
    values = runs[features].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    flagged = runs["diverged"].to_numpy(bool) if "diverged" in runs else np.zeros(len(runs), bool)
    excluded = []
    seeds = runs["seed"].to_numpy()
    steps = runs["step"].to_numpy()
    for run in pd.unique(seeds):
        rows = seeds == run
        run_bad = bad[rows]
        if run_bad.any():
            first = int(np.flatnonzero(run_bad.any(axis=1))[0])
            names = [f for f, b in zip(features, run_bad.any(axis=0), strict=True) if b]
            reason = f"diverged: non-finite {', '.join(names)} from step {steps[rows][first]}"
        elif flagged[rows].any():
            reason = _flag_reason(runs[rows], int(steps[rows][np.flatnonzero(flagged[rows])[0]]))
        else:
            continue
        log.warning("run %s excluded from the HMM: %s", run, reason)
        excluded.append({"seed": run, "reason": reason})
    return excluded


def _flag_reason(run: pd.DataFrame, flagged_from: int) -> str:
    """Why a run its ``diverged`` column marks is left out: the loss that turned non-finite
    and the step (trainmap.io.divergence), from the flagged row or anywhere in the run (a
    trained run is flagged at every row)."""
    found = divergence(run, flagged_from) or divergence(run)
    if found is not None:
        return f"diverged: {found.text()}"
    if not loss_columns(run.columns):
        return f"diverged: its diverged column marks it from step {flagged_from} (no loss column)"
    return (
        f"diverged: its diverged column marks it from step {flagged_from}, but no loss "
        "column turned non-finite after a finite value (a file of a Recorder before the "
        "'not logged yet' rule, which also counted a nan placeholder: record it again)"
    )


def _zscore(
    kept: pd.DataFrame, features: list[str], normalize: str
) -> tuple[np.ndarray, dict[str, list], dict[str, dict[str, float]] | None]:
    """Z-scores (population SD) per run or pooled; a constant feature gets z = 0.

    Also returns, for ``normalize: global``, the pooled mean and SD of every feature in
    its own units (``Prepared.scale``; None per run): the scaled block's mean and SD times
    the power of two it was divided by, which is exact, so the z-scores are unchanged.
    """
    values = kept[features].to_numpy(dtype=np.float64)
    seeds = kept["seed"].to_numpy()
    groups = [seeds == run for run in pd.unique(seeds)] if normalize == "per_run" else [None]
    z = np.empty_like(values)
    constant: dict[str, list] = {}
    scale = None
    for rows in groups:
        block, factor = _power_of_two_scaled(values if rows is None else values[rows])
        mean, sd = block.mean(axis=0), block.std(axis=0)
        # max == min, not sd == 0: the SD of a constant float column may round to 1e-17
        flat = block.max(axis=0) == block.min(axis=0)
        block_z = np.where(flat, 0.0, (block - mean) / np.where(flat, 1.0, sd))
        if rows is None:
            z = block_z
            scale = {
                "mean": dict(zip(features, (mean * factor).tolist(), strict=True)),
                "sd": dict(zip(features, np.where(flat, 0.0, sd * factor).tolist(), strict=True)),
            }
        else:
            z[rows] = block_z
        # plain ints: a warning lists runs as [0, 3], not [np.int64(0), np.int64(3)]
        which = plain(sorted(pd.unique(seeds)) if rows is None else [seeds[rows][0]])
        for name in np.asarray(features)[flat]:
            constant.setdefault(str(name), []).extend(which)
    for name, runs in constant.items():
        log.warning("feature %s is constant in run(s) %s: z-scores set to 0", name, runs)
    return z, constant, scale


def _power_of_two_scaled(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``block`` (rows, features) with each column divided by a power of two near its
    largest magnitude, and those powers of two: (features,).

    Z-scores do not depend on the scale, and dividing by a power of two is exact, so they
    come out bit for bit as before, but squares no longer overflow (values ~1e300 made the
    SD inf and the feature all zeros) or underflow (~1e-300).
    """
    largest = np.abs(block).max(axis=0, initial=0.0)
    _, exponent = np.frexp(np.where(largest > 0, largest, 1.0))
    factor = np.ldexp(1.0, exponent - 1)  # 2**1024 itself would overflow
    return block / factor, factor
