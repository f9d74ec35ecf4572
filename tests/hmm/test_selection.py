"""Selecting K: a fixed score table, the figure, and recovery of a planted 4-state HMM."""

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from trainmap.figures.selection import plot_selection
from trainmap.figures.summary import headline, summary_markdown
from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import fit_state_count, model_from_json
from trainmap.hmm.selection import select_state_count, selection_notes
from trainmap.hmm.sequences import observations, prepare_sequences


@pytest.fixture(autouse=True)
def one_thread():
    """As in the fit_hmm jobs: threaded BLAS on tiny matrices is slow on a busy machine."""
    with threadpool_limits(limits=1):
        yield


def fit(k: int, bic: float, mean_bic: float | None = None, loglik: float = -100.0) -> dict:
    return {
        "n_states": k,
        "train_loglik": loglik,
        "val_loglik": loglik,
        "val_aic": bic - 1,
        "val_bic": bic,
        "mean": {"val_loglik": loglik - 1, "val_aic": bic, "val_bic": mean_bic or bic},
        "sd": {"val_loglik": 1.0, "val_aic": 0.0, "val_bic": 0.0},
        "n_params": 3 * k,
    }


def test_lowest_bic_of_the_kept_model_wins():
    fits = [fit(3, 90.0, mean_bic=200.0), fit(1, 120.0), fit(2, 100.0)]
    selection = select_state_count(fits)
    assert selection["n_states"] == 3 and selection["criterion"] == "bic"
    assert [row["n_states"] for row in selection["scores"]] == [1, 2, 3]
    assert selection["scores"][2] == {
        "n_states": 3,
        "train_loglik": -100.0,
        "val_loglik": -100.0,
        "val_aic": 89.0,
        "val_bic": 90.0,
        "mean_val_loglik": -101.0,
        "mean_val_aic": 90.0,
        "mean_val_bic": 200.0,
        "sd_val_loglik": 1.0,
        "sd_val_aic": 0.0,
        "sd_val_bic": 0.0,
        "n_params": 9,
    }
    # one bad restart at K=3 makes the authors' restart-mean rule pick K=2
    assert selection["mean_n_states"] == 2


def test_ties_go_to_the_smaller_k_and_a_single_k_is_selected():
    assert select_state_count([fit(4, 50.0), fit(2, 50.0), fit(3, 60.0)])["n_states"] == 2
    single = select_state_count([fit(5, 10.0)])
    assert single["n_states"] == 5 and single["mean_n_states"] == 5
    assert len(single["scores"]) == 1


def test_non_finite_bic_is_skipped_and_bad_inputs_raise():
    assert select_state_count([fit(1, 10.0), fit(2, float("nan"))])["n_states"] == 1
    with pytest.raises(ValueError, match="no state count has a finite validation BIC"):
        select_state_count([fit(1, float("inf"))])
    with pytest.raises(ValueError, match="duplicate state counts"):
        select_state_count([fit(1, 1.0), fit(1, 2.0)])
    with pytest.raises(ValueError, match="no fits"):
        select_state_count([])


def test_selection_figure_marks_the_selected_k(tmp_path):
    selection = select_state_count([fit(k, 100.0 - 10 * k + k * k) for k in range(1, 9)])
    figure = plot_selection(selection, "parity")
    left, right = figure.axes
    assert "parity" in figure.get_suptitle() and "K = 5" in figure.get_suptitle()
    assert left.get_xlabel() == right.get_xlabel() == "number of states K"
    assert "log-likelihood" in left.get_ylabel() and "lower is better" in right.get_ylabel()
    figure.savefig(tmp_path / "selection.png")
    assert (tmp_path / "selection.png").stat().st_size > 10_000


def guarded(fit_json: dict, per_restart: list, kept: int = 0) -> dict:
    """A k<K>.json with the guard's counts per restart (None: a failed restart)."""
    guard = {"rule": "singular", "iterations": per_restart[kept], "per_restart": per_restart}
    return {**fit_json, "guard": guard, "kept_restart": kept}


def figure_texts(figure) -> str:
    return "\n".join(t.get_text() for t in figure.texts)


def test_guard_is_silent_when_it_never_acted_and_named_when_it_did(tmp_path):
    quiet = select_state_count([guarded(fit(k, 100.0 - k), [0, 0, 0]) for k in (1, 2, 3)])
    assert quiet["covariance_guard"] == {"rule": "singular", "acted": False, "fits": []}
    assert [row["guard_iterations"] for row in quiet["scores"]] == [0, 0, 0]
    assert "guard" not in figure_texts(plot_selection(quiet, "parity"))

    fits = [
        guarded(fit(1, 99.0), [0, 0, 0]),
        guarded(fit(2, 98.0), [0, 4, None], kept=1),
        guarded(fit(3, 97.0), [2, 0, 0], kept=1),
    ]
    loud = select_state_count(fits)
    guard = loud["covariance_guard"]
    assert guard["acted"] is True and guard["rule"] == "singular"
    assert [(f["n_states"], f["kept_iterations"], f["restarts_acted"]) for f in guard["fits"]] == [
        (2, 4, 1),
        (3, 0, 1),
    ]
    rows = {row["n_states"]: row for row in loud["scores"]}
    assert rows[2]["guard_iterations"] == 4 and rows[2]["guard_restarts"] == 1
    assert rows[3]["guard_iterations"] == 0 and rows[3]["guard_restarts"] == 1
    figure = plot_selection(loud, "parity")
    note = figure_texts(figure)
    assert "covariance guard (singular) acted" in note and "K=2: 1/3 restarts" in note
    _, right = figure.axes
    assert any("covariance guard" in t.get_text() for t in right.get_legend().get_texts())
    figure.savefig(tmp_path / "selection.png")


def planted_model(n_features: int = 3, stay: float = 0.98) -> GaussianHMM:
    """4 states visited left to right, well-separated means (3 z units apart).

    ``stay`` 0.98: about 50 steps per state, so in 100 steps the runs get to different
    states, as training runs do (seeds 0..39: 9 end in state 0, 10 in 1, 10 in 2, 11 in 3).
    """
    rng = np.random.default_rng(0)
    model = GaussianHMM(4, covariance_type="full", init_params="", params="")
    model.startprob_ = np.array([1.0, 0.0, 0.0, 0.0])
    model.transmat_ = np.diag([stay, stay, stay, 1.0]) + np.diag([1 - stay] * 3, k=1)
    model.means_ = 3.0 * np.array([[0, 0, 0], [1, 0, 1], [1, 1, 0], [0, 1, 1]], float)
    factors = rng.normal(0.0, 0.3, size=(4, n_features, n_features))
    model.covars_ = factors @ factors.transpose(0, 2, 1) + 0.2 * np.eye(n_features)
    return model


@pytest.fixture(scope="module")
def planted_runs() -> pd.DataFrame:
    """40 runs x 100 steps sampled with fixed seeds; ``true`` holds the planted state."""
    model, tables = planted_model(), []
    for run in range(40):
        X, states = model.sample(100, random_state=run)
        table = pd.DataFrame(X, columns=["a", "b", "c"])
        table.insert(0, "seed", run)
        table.insert(1, "step", np.arange(100))
        table["true"] = states
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def select_on(runs: pd.DataFrame, normalize: str, states=range(1, 7)):
    prepared = prepare_sequences(
        runs, ["a", "b", "c"], max_checkpoints=1000, normalize=normalize, val_fraction=0.2, seed=0
    )
    fit_data = observations(prepared.table, ["a", "b", "c"], "fit")
    val_data = observations(prepared.table, ["a", "b", "c"], "val")
    options = {"restarts": 2, "n_iter": 20, "covariance": "full", "seed": 0}
    fits = [fit_state_count(fit_data, val_data, k, ["a", "b", "c"], **options) for k in states]
    return prepared, fits, select_state_count(fits)


def test_recovers_planted_four_states_with_global_zscores(planted_runs):
    prepared, fits, selection = select_on(planted_runs, "global")
    assert selection["n_states"] == 4
    # candidates 1..6 span the planted K: no edge note; with 2 restarts of which one alone
    # picks 4, the restart note (half the replicates would report another K)
    assert selection["at_largest_candidate"] is False
    assert selection["at_smallest_candidate"] is False
    restarts = selection["stability"]["restarts"]
    note = summary_row(selection)["note"]
    assert "widen" not in note
    assert ("raise hmm.restarts" in note) == (restarts["share"] <= 0.5)
    kept = next(f for f in fits if f["n_states"] == 4)
    decoded = decode_states(model_from_json(kept), prepared.table, ["a", "b", "c"])
    assert list(decoded.columns) == ["seed", "step", "split", "state"]
    assert len(decoded) == 4000 and set(decoded["split"]) == {"fit", "val"}
    both = decoded.merge(planted_runs[["seed", "step", "true"]], on=["seed", "step"])
    counts = np.zeros((4, 4))
    np.add.at(counts, (both["state"], both["true"]), 1)
    rows, cols = linear_sum_assignment(-counts)  # Hungarian matching of labels
    assert counts[rows, cols].sum() / len(both) >= 0.95


def test_per_run_zscores_overestimate_k_on_the_same_data(planted_runs):
    # docs/normalization.md: each run's own mean/SD moves the same state to different places
    _, _, selection = select_on(planted_runs, "per_run")
    assert selection["n_states"] > 4


def summary_row(selection: dict) -> dict[str, str]:
    """The summary.md row of a setting with this selection (a plain map, no detours)."""
    detours = pd.DataFrame({"state": [0], "is_detour": [False], "kind": [""]})
    regression = {"r2": 0.5, "f_pvalue": 1e-5, "significant": True, "n_runs": 40}
    return headline(
        {"n_states": selection["n_states"], "forking": False}, detours, regression, selection
    )


def test_candidates_below_the_planted_k_flag_the_edge(planted_runs, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="trainmap.hmm.selection"):
        _, _, selection = select_on(planted_runs, "global", states=[1, 2, 3])
    assert selection["n_states"] == 3
    assert selection["at_largest_candidate"] is True
    assert selection["at_smallest_candidate"] is False
    note = "K = 3 is the largest candidate and BIC is still falling: widen hmm.states"
    assert note in caplog.text
    row = summary_row(selection)
    assert note in row["note"]
    assert note in summary_markdown({"planted": row}, [], {})
    figure = plot_selection(selection, "planted")
    assert note in figure_texts(figure)
    assert any("largest candidate" in t.get_text() for t in figure.axes[1].texts)
    figure.savefig(tmp_path / "selection.png")


def test_candidates_above_the_planted_k_flag_the_smallest(planted_runs):
    _, _, selection = select_on(planted_runs, "global", states=[5, 6])
    assert selection["n_states"] == 5
    assert selection["at_smallest_candidate"] is True
    assert selection["at_largest_candidate"] is False
    assert (
        "K = 5 is the smallest candidate and BIC is still falling" in summary_row(selection)["note"]
    )


def test_edge_flags_are_always_present_and_k1_is_no_lower_edge():
    selection = select_state_count([fit(1, 50.0), fit(2, 60.0), fit(3, 70.0)])
    assert selection["at_largest_candidate"] is False
    assert selection["at_smallest_candidate"] is False  # K = 1 cannot be undercut
    assert selection_notes(selection) == []
    assert summary_row(selection)["note"] == ""
    assert "largest candidate" not in figure_texts(plot_selection(selection, "parity"))


def with_restarts(fit_json: dict, bics: list) -> dict:
    return {**fit_json, "restarts": [{"restart": r, "val_bic": b} for r, b in enumerate(bics)]}


def test_share_of_restarts_picking_k_and_a_note_when_it_is_low():
    third = with_restarts(fit(3, 95.0), [95, 96, 97])  # K = 2 is inside the candidates
    steady = select_state_count(
        [
            with_restarts(fit(1, 100.0), [100, 101, 102]),
            with_restarts(fit(2, 90.0), [90, 91, 92]),
            third,
        ]
    )
    assert steady["stability"]["restarts"] == {"picks": [2, 2, 2], "agree": 3, "n": 3, "share": 1.0}
    assert selection_notes(steady) == [] and summary_row(steady)["K agreed by"] == "3/3 restarts"
    # restart 1 failed at K = 2 (null): that replicate can only pick K = 1
    shaky = select_state_count(
        [
            with_restarts(fit(1, 100.0), [100, 101, 102]),
            with_restarts(fit(2, 90.0), [90, None, 130]),
        ]
    )
    assert shaky["n_states"] == 2
    assert shaky["stability"]["restarts"]["picks"] == [2, 1, 1]
    note = "K = 2 rests on the best restarts: only 1/3 restarts alone pick it"
    assert note in summary_row(shaky)["note"]
    assert note in figure_texts(plot_selection(shaky, "parity"))


def test_folds_that_disagree_get_a_note():
    def folded(k: int, folds: list[float]) -> dict:
        cv = {"fold_val_bic": folds, "fold_val_loglik": [-f for f in folds]}
        return {**fit(k, sum(folds)), "cv": {**cv, "restart_val_bic": [sum(folds)]}}

    selection = select_state_count(
        [folded(1, [10, 20, 30]), folded(2, [12, 22, 20]), folded(3, [20, 30, 40])]
    )
    assert selection["n_states"] == 2 and selection["fold_n_states"] == [1, 1, 2]
    assert selection["stability"]["folds"]["agree"] == 1
    row = summary_row(selection)
    assert row["K agreed by"] == "1/3 folds, 1/1 restarts"
    assert "K = 2 is unstable across runs: only 1/3 folds alone pick it" in row["note"]
