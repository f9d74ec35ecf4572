"""Blocks of consecutive checkpoints: choosing K on one run (``hmm.selection: time``).

A single training run (one seed of OLMo, Amber, TinyLlama, SmolLM) has no second run to
validate on, so K is chosen on time instead of runs. A setting with one run gets
``selection: time`` in place of ``split`` (trainmap.config.settings); any setting may ask
for it. docs/state_count.md ("One run") gives the whole protocol; here is its geometry.

**Decision: B folds of interleaved blocks** (B = ``hmm.folds``, default 5). Each run's
checkpoints, in step order, are cut into ``ROUNDS`` x B blocks of consecutive checkpoints
whose sizes differ by at most one (``numpy.array_split``), and block i goes to fold
i mod B: the run's quarters are each cut into B blocks and fold b holds out the b-th block
of every quarter (with B = 5, four blocks of 5% of the run each, spread over early, middle
and late training). B plain contiguous blocks (one fifth of the run each) were tried and
refused: a phase that lies within one fifth is never seen by that fold's fit, every K > 1
model then finds the held-out fifth nearly impossible, and K = 1 wins (a planted run of
four phases over 200 checkpoints chose K = 1). With interleaved blocks any phase longer
than two blocks (10% of the run at B = 5) is partly in every fold's fit; shorter phases
can still hide in one block. Shorter blocks would hide fewer phases, but the checkpoints
next to a held-out block would vouch for it more (consecutive checkpoints are
correlated, so a block of one or two checkpoints is nearly an in-sample score).

Fold b holds out its blocks of every run (trainmap.hmm.time_selection fits on the rest).

**Decision: in-sample BIC below B x 10 rows.** Every fold must hold out at least
``MIN_BLOCK_ROWS`` rows (then every block has at least two checkpoints), the floor a
validation split has (below 10 rows the choice of K flipped with the seed,
trainmap.hmm.split). When the smallest fold would hold out fewer,
the run is too short for held-out blocks and K is chosen by the in-sample BIC of a fit on
every checkpoint; selection.json, the map's notes and summary.md say so. Below
``MIN_BLOCK_ROWS`` rows in all, K cannot be chosen at all (``time_problem``).
"""

import numpy as np

from trainmap.errors import ConfigError
from trainmap.hmm.split import MIN_RUN_CHECKPOINTS, MIN_VAL_ROWS

MIN_BLOCK_ROWS = MIN_VAL_ROWS
SELECTION = "time"
IN_SAMPLE, BLOCKS = "in-sample", "blocks"  # k<K>.json and selection.json ``held_out``
ROUNDS = 4  # blocks per fold and run: one in each quarter of the run


def block_index(n_rows: int, blocks: int) -> np.ndarray:
    """The fold that holds out each of a run's ``n_rows`` checkpoints (in step order):
    (n_rows,) int64; ``ROUNDS * blocks`` blocks of consecutive checkpoints whose sizes
    differ by at most one, block i held out by fold i mod ``blocks``."""
    sizes = [len(part) for part in np.array_split(np.arange(n_rows), ROUNDS * blocks)]
    return np.repeat(np.arange(ROUNDS * blocks, dtype=np.int64) % blocks, sizes)


def held_out_rows(lengths: list[int], blocks: int) -> list[int]:
    """Rows each fold holds out, summed over the runs (``lengths``: rows per run)."""
    counts = np.zeros(blocks, dtype=np.int64)
    for n in lengths:
        counts += np.bincount(block_index(n, blocks), minlength=blocks)
    return counts.tolist()


def in_sample_reason(lengths: list[int], blocks: int) -> str | None:
    """Why the runs are too short for held-out blocks (K then comes from the in-sample
    BIC), or None when every fold holds out at least ``MIN_BLOCK_ROWS`` rows."""
    held = held_out_rows(lengths, blocks)
    if min(held) >= MIN_BLOCK_ROWS:
        return None
    what = f"{lengths[0]} checkpoints" if len(lengths) == 1 else f"{sum(lengths)} rows"
    return (
        f"{what} are too few for {blocks} folds of held-out blocks of at least "
        f"{MIN_BLOCK_ROWS} rows each (hmm.folds {blocks}; the smallest holds {min(held)}): "
        "K is chosen by the "
        f"in-sample BIC of a fit on every checkpoint, which favours more states; "
        f"held-out blocks from {blocks * MIN_BLOCK_ROWS} checkpoints"
    )


def fit_rows(lengths: list[int], blocks: int) -> int:
    """Rows the smallest fit sees: every row but the largest fold's, or every row when the
    runs are too short for blocks (in-sample)."""
    if in_sample_reason(lengths, blocks):
        return sum(lengths)
    return sum(lengths) - max(held_out_rows(lengths, blocks))


def time_problem(lengths: list[int], states: list[int], blocks: int) -> str | None:
    """Why K cannot be chosen on these runs over time, or None.

    ``lengths``: rows per run (after ``hmm.max_checkpoints``). Refused: a run with fewer
    than two checkpoints, fewer than ``MIN_BLOCK_ROWS`` rows in all (even the in-sample
    BIC is noise there), a candidate K above the rows the smallest fit sees."""
    if not lengths:
        return "no usable run"
    total = sum(lengths)
    what = f"one run of {total} checkpoints" if len(lengths) == 1 else f"{total} rows in all"
    if min(lengths) < MIN_RUN_CHECKPOINTS:
        return f"{what}: a run needs at least {MIN_RUN_CHECKPOINTS} for the HMM to see a change"
    if total < MIN_BLOCK_ROWS:
        return (
            f"{what}: choosing K over time needs at least {MIN_BLOCK_ROWS} (in-sample BIC; "
            f"held-out blocks from {blocks * MIN_BLOCK_ROWS}, hmm.folds {blocks})"
        )
    n_fit = fit_rows(lengths, blocks)
    too_many = sorted(k for k in states if k > n_fit)
    if too_many:
        return f"{what}: hmm.states K={too_many} exceed the {n_fit} rows a fit sees"
    return None


def check_predicted_blocks(
    checkpoints: dict[int, int], hmm: dict, where: str, how: str, more: str
) -> None:
    """Refuse, at validation, runs that ``prepare_sequences`` would refuse under
    ``selection: time`` (``time_problem``). checkpoints: run -> checkpoints it will have;
    ``how``: where those counts come from; ``more``: the keys that give a run more."""
    cap = hmm["max_checkpoints"]
    rows = [min(n, cap) for n in checkpoints.values()]
    capped = f", cut to hmm.max_checkpoints {cap}" if max(checkpoints.values()) > cap else ""
    problem = time_problem(rows, hmm["states"], hmm["folds"])
    if problem:
        raise ConfigError(
            f"{where}: hmm.selection time: {problem} ({how}{capped}); {more}, or lower "
            f"{where}.hmm.states"
        )
