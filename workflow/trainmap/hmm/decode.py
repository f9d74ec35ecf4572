"""Viterbi state paths of every run under the selected model (METHOD.md section 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trainmap.hmm.sequences import observations

if TYPE_CHECKING:  # hmmlearn imports scikit-learn (~0.8 s): jobs that neither fit nor
    from hmmlearn.hmm import GaussianHMM  # decode do not pay for it


def decode_states(model: GaussianHMM, sequences: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """``seed, step, split, state`` for every row of ``sequences`` (fit and validation runs).

    ``sequences``: the prepared table (sorted by seed, step; z-scored ``features``). Each
    run is decoded on its own (hmmlearn's ``decode`` with per-run lengths), so a path
    never crosses from one run into the next. ``state`` is an int64 in [0, K).
    """
    X, lengths = observations(sequences, features)
    _, states = model.decode(X, lengths, algorithm="viterbi")
    return pd.DataFrame(
        {
            "seed": sequences["seed"].to_numpy(),
            "step": sequences["step"].to_numpy(),
            "split": sequences["split"].to_numpy(),
            "state": states.astype(np.int64),
        }
    )
