"""K over time (hmm.selection: time): the blocks of consecutive checkpoints, what each
fold fits and holds out, and the held-out score of a block given the checkpoints before."""

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM

from trainmap.hmm.blocks import block_index, held_out_rows, in_sample_reason, time_problem
from trainmap.hmm.time_selection import block_observations, held_out_loglik, scoring_model


def test_blocks_interleave_one_per_quarter_and_fold():
    # 40 checkpoints, 2 folds: 8 blocks of 5, fold 0 holds blocks 0, 2, 4, 6
    assert block_index(40, 2).tolist() == ([0] * 5 + [1] * 5) * 4
    sizes = np.bincount(block_index(23, 5))
    assert sizes.sum() == 23 and sizes.max() - sizes.min() <= 1
    assert held_out_rows([40, 20], 2) == [30, 30]


def test_runs_too_short_for_blocks_get_the_in_sample_bic_and_tiny_ones_are_refused():
    assert in_sample_reason([50], 5) is None
    assert "49 checkpoints are too few for 5 folds" in in_sample_reason([49], 5)
    assert time_problem([49], [1, 2], 5) is None
    assert "needs at least 10" in time_problem([9], [1, 2], 5)
    assert "hmm.states K=[30]" in time_problem([20], [1, 30], 2)  # a fold fits 10 rows


def test_a_fold_fits_the_stretches_it_keeps_and_scores_blocks_after_their_context():
    table = pd.DataFrame({"seed": [0] * 8, "step": range(8), "block": [0, 0, 1, 1] * 2})
    table["a"] = np.arange(8.0)
    (X, lengths), (held, held_lengths), contexts = block_observations(table, ["a"], 1)
    assert X[:, 0].tolist() == [0, 1, 4, 5] and lengths.tolist() == [2, 2]
    assert held[:, 0].tolist() == [2, 3, 6, 7] and held_lengths.tolist() == [2, 2]
    assert [c[:, 0].tolist() for c in contexts] == [[0, 1], [0, 1, 2, 3, 4, 5]]


def test_held_out_score_is_the_conditional_likelihood_given_the_past():
    model = GaussianHMM(n_components=2, covariance_type="diag")
    model.startprob_ = np.array([0.6, 0.4])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    model.means_ = np.array([[0.0], [2.0]])
    model.covars_ = np.array([[1.0], [0.5]])
    context, block = np.array([[0.1], [1.9]]), np.array([[2.2], [0.3]])
    got = held_out_loglik(model, (block, np.array([2])), [context])
    whole = model.score(np.concatenate([context, block]))
    assert got == pytest.approx(whole - model.score(context))
    scored = scoring_model(model, n_fit=10)  # uniform start, smoothed transitions
    assert scored.startprob_ == pytest.approx([0.5, 0.5])
    assert scored.transmat_[0] == pytest.approx([0.9 * 0.9 + 0.05, 0.1 * 0.9 + 0.05])
    assert model.startprob_[0] == 0.6  # the fold's model itself is unchanged
