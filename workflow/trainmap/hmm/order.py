"""State numbering that does not depend on EM's arbitrary labels.

An HMM's state labels are a permutation EM happens to land on: two fits of the same runs
can call the same phase S1 and S4. Every fitted model the workflow keeps is renumbered so
that states are in the order runs first reach them: S0 is where runs start, S1 the state
reached next on average, and so on. Two maps of the same runs then read side by side.

**Decision:** the order is the mean, over the runs that visit a state, of the checkpoint
index (0 = a run's first checkpoint) of the run's first visit under the model's Viterbi
paths of every run; ties go to the lower old label; states no run visits come last, by
old label. Checkpoint indices, not steps, so the order needs only the HMM's input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # hmmlearn imports scikit-learn (~0.8 s): jobs that neither fit nor
    from hmmlearn.hmm import GaussianHMM  # decode do not pay for it


def first_reach_order(paths: list[np.ndarray], n_states: int) -> list[int]:
    """Old labels in their new order: ``order[new] = old``.

    ``paths``: one decoded path (checkpoint -> state) per run.
    """
    sums, counts = np.zeros(n_states), np.zeros(n_states)
    for path in paths:
        states, first = np.unique(np.asarray(path), return_index=True)
        sums[states] += first
        counts[states] += 1
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    return [int(k) for k in np.lexsort((np.arange(n_states), mean))]


def viterbi_paths(model: GaussianHMM, X: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Each run's Viterbi path; ``X`` (rows, features) with runs contiguous."""
    _, states = model.decode(X, lengths, algorithm="viterbi")
    return np.split(states, np.cumsum(lengths)[:-1])


def permute_model(model: GaussianHMM, order: list[int]) -> GaussianHMM:
    """The same model with state ``order[new]`` renamed ``new``: every likelihood is
    unchanged and every Viterbi path is relabelled."""
    index = np.asarray(order)
    model.startprob_ = model.startprob_[index]
    model.transmat_ = model.transmat_[np.ix_(index, index)]
    model.means_ = model.means_[index]
    covars = model.covars_[index]  # full (K, F, F) for every covariance type
    if model.covariance_type == "diag":
        covars = np.diagonal(covars, axis1=1, axis2=2)
    model.covars_ = covars
    return model


def number_by_first_reach(
    model: GaussianHMM, X: np.ndarray, lengths: np.ndarray
) -> tuple[GaussianHMM, list[int]]:
    """``model`` renumbered in first-reach order over the runs ``(X, lengths)``, and the
    order applied (``order[new] = old``)."""
    order = first_reach_order(viterbi_paths(model, X, lengths), model.n_components)
    return permute_model(model, order), order
