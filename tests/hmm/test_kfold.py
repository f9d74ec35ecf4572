"""Choosing K by cross-validation over runs (hmm.selection: kfold): folds, config
checks, recovery of a planted K, the kept model, and one job per (K, fold) in the DAG."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG, run_workflow
from planted import planted_runs, table_config
from test_selection import planted_model
from test_workflow import job_counts
from threadpoolctl import threadpool_limits

from trainmap.config.settings import load_yaml, validate_config
from trainmap.errors import ConfigError
from trainmap.figures.selection import plot_selection
from trainmap.hmm.kfold import fit_fold, fold_observations, refit_all_runs
from trainmap.hmm.selection import guard_note, select_state_count, stability_text
from trainmap.hmm.sequences import SequenceError, fold_runs, prepare_sequences

FEATURES = ["a", "b", "c"]
PARITY = {
    "source": "train",
    "task": "sparse_parity",
    "seeds": 3,
    "convergence": {"column": "eval_accuracy", "threshold": 0.9},
}


def test_folds_deal_every_run_once_from_the_sorted_list():
    runs = list(range(40))
    folds = fold_runs(runs, 5, seed=0)
    assert [len(f) for f in folds] == [8] * 5
    assert sorted(r for f in folds for r in f) == runs
    assert fold_runs(runs[::-1], 5, seed=0) == folds  # order of the input does not matter
    assert fold_runs(runs, 5, seed=1) != folds  # the seed does
    assert [len(f) for f in fold_runs(list(range(7)), 3, seed=0)] == [3, 2, 2]


@pytest.mark.parametrize(
    ("hmm", "message"),
    [
        ({"selection": "kfold", "folds": 1}, "folds: 1 is less than the minimum of 2"),
        ({"selection": "kfold", "folds": 4}, "settings.parity.hmm.folds: 4 folds need at least 4"),
        ({"selection": "loo"}, "selection: 'loo' is not one of ['split', 'kfold', 'time']"),
    ],
)
def test_bad_fold_settings_are_refused(hmm, message):
    with pytest.raises(ConfigError, match="folds|selection") as error:
        validate_config({"settings": {"parity": {**PARITY, "hmm": hmm}}})
    assert message in str(error.value)


def test_split_is_the_default_and_folds_fit_the_runs():
    setting = validate_config({"settings": {"parity": PARITY}})["parity"]
    assert setting.hmm["selection"] == "split" and setting.hmm["folds"] == 5
    kfold = {**PARITY, "hmm": {"selection": "kfold", "folds": 3}}
    assert validate_config({"settings": {"parity": kfold}})["parity"].hmm["folds"] == 3


def planted_table(n_runs: int = 40) -> pd.DataFrame:
    model, tables = planted_model(), []
    for run in range(n_runs):
        X, _ = model.sample(100, random_state=run)
        table = pd.DataFrame(X, columns=FEATURES)
        table.insert(0, "seed", run)
        table.insert(1, "step", np.arange(100))
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def prepare(runs: pd.DataFrame, folds: int, **kwargs):
    return prepare_sequences(
        runs,
        FEATURES,
        max_checkpoints=1000,
        normalize="global",
        val_fraction=0.2,
        seed=0,
        folds=folds,
        **kwargs,
    )


def test_a_table_with_fewer_runs_than_folds_is_refused():
    with pytest.raises(SequenceError, match="hmm.folds: 5 folds need .* 3 usable run"):
        prepare(planted_table(3), folds=5)
    with pytest.raises(SequenceError, match="fold 0 validates 4 rows"):
        prepare(planted_table(4).groupby("seed").head(4), folds=4)


def test_prepared_folds_hold_out_each_run_once():
    prepared = prepare(planted_table(10), folds=5)
    table = prepared.table
    assert set(table["split"]) == {"fit"}  # the kept model is refit on all runs
    assert table.groupby("seed")["fold"].nunique().eq(1).all()
    assert sorted(table.groupby("fold")["seed"].nunique()) == [2] * 5
    assert prepared.report()["folds"] == prepared.folds
    (fit, _), (val, val_lengths) = fold_observations(table, FEATURES, 2)
    assert len(fit) + len(val) == len(table) and list(val_lengths) == [100, 100]


@pytest.fixture(scope="module")
def kfold_fits():
    """Candidates 3..5 on the planted 4-state runs, 4 folds of 10 runs, 2 restarts."""
    prepared = prepare(planted_table(), folds=4, states=[3, 4, 5])
    options = {"restarts": 2, "n_iter": 20, "covariance": "full", "seed": 0}
    fits = []
    with threadpool_limits(limits=1):
        for k in (3, 4, 5):
            folds = [fit_fold(prepared.table, FEATURES, k, f, **options) for f in range(4)]
            fits.append(refit_all_runs(prepared.table, FEATURES, k, folds, **options))
    return prepared, fits


def test_kfold_recovers_the_planted_k_with_one_score_per_fold(kfold_fits, tmp_path):
    _, fits = kfold_fits
    selection = select_state_count(fits)
    assert selection["n_states"] == 4 and selection["selection"] == "kfold"
    assert selection["folds"] == 4 and len(selection["fold_n_states"]) == 4
    assert selection["at_largest_candidate"] is False
    assert selection["at_smallest_candidate"] is False
    for row in selection["scores"]:
        assert len(row["fold_val_bic"]) == len(row["fold_val_loglik"]) == 4
        assert row["val_bic"] == pytest.approx(sum(row["fold_val_bic"]))  # summed, not averaged
        assert len(row["restart_val_bic"]) == 2
    folds = selection["stability"]["folds"]
    assert folds["n"] == 4 and folds["agree"] == selection["fold_n_states"].count(4)
    assert stability_text(selection).startswith(f"{folds['agree']}/4 folds")
    figure = plot_selection(selection, "planted")
    assert len(figure.axes) == 3
    assert any("fold 3 (picks K =" in t.get_text() for t in figure.axes[2].get_legend().texts)
    figure.savefig(tmp_path / "selection.png")


def test_kept_model_is_refit_on_all_runs_by_training_likelihood(kfold_fits):
    prepared, fits = kfold_fits
    kept = next(f for f in fits if f["n_states"] == 4)
    assert kept["n_fit_rows"] == len(prepared.table) == 4000
    assert kept["n_val_rows"] == 4000  # every row validated once, by its fold
    best = max(kept["restarts"], key=lambda r: r["train_loglik"])
    assert kept["kept_restart"] == best["restart"]
    assert kept["train_loglik"] == best["train_loglik"]
    assert "val_bic" not in best  # nothing held out from the refit
    assert kept["val_bic"] == pytest.approx(sum(kept["cv"]["fold_val_bic"]))


def kfold_config(tmp_path, folds: int = 2):
    config = load_yaml(TINY_CONFIG)
    config["hmm"] = {**config["hmm"], "selection": "kfold", "folds": folds}
    path = tmp_path / "kfold.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_has_one_job_per_k_and_fold(tmp_path):
    result = run_workflow(tmp_path / "run", kfold_config(tmp_path), extra_args=["--dry-run"])
    counts = job_counts(result.stdout)
    # tiny: 2 settings x states [1, 2] x 2 folds; the refit stays one job per K
    assert counts["fit_hmm_fold"] == 2 * 2 * 2
    assert counts["fit_hmm"] == 2 * 2
    assert counts["select_state_count"] == 2
    assert "results/parity/hmm/folds/k2_fold1.json" in result.stdout


@pytest.mark.slow
def test_kfold_workflow_runs_on_a_table(tmp_path):
    """A real run of the HMM stage with kfold on a planted source: table setting."""
    runs = planted_runs(n_runs=12).trajectories
    hmm = {"states": [1, 2, 3], "restarts": 2, "n_iter": 8, "covariance": "diag",
           "selection": "kfold", "folds": 3}  # fmt: skip
    config = table_config(tmp_path, "planted", runs, hmm)
    path = tmp_path / "kfold.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "run"
    targets = ["results/planted/states.parquet", "results/planted/selection.png"]
    run_workflow(work, path, targets=targets)
    results = work / "results/planted"
    selection = json.loads((results / "hmm/selection.json").read_text())
    assert selection["selection"] == "kfold" and len(selection["fold_n_states"]) == 3
    assert all(len(row["fold_val_bic"]) == 3 for row in selection["scores"])
    assert sorted(p.name for p in (results / "hmm/folds").iterdir()) == [
        f"k{k}_fold{f}.json" for k in (1, 2, 3) for f in range(3)
    ]
    prepare_report = json.loads((results / "hmm/prepare.json").read_text())
    assert sorted(r for fold in prepare_report["folds"] for r in fold) == list(range(12))
    kept = json.loads((results / f"hmm/k{selection['n_states']}.json").read_text())
    assert kept["n_fit_rows"] == len(runs) and kept["selection"] == "kfold"
    states = pd.read_parquet(results / "states.parquet")
    assert len(states) == len(runs) and set(states["split"]) == {"fit"}


def test_guard_action_in_a_fold_fit_is_reported(kfold_fits):
    _, fits = kfold_fits
    quiet = select_state_count(fits)
    assert quiet["covariance_guard"]["folds"] == [] and not quiet["covariance_guard"]["acted"]
    k3 = next(f for f in fits if f["n_states"] == 3)
    cv = {**k3["cv"], "fold_guard_iterations": [[0, 0], [0, 3], [0, 0], [0, 0]]}
    loud = select_state_count([{**k3, "cv": cv}, *[f for f in fits if f is not k3]])
    guard = loud["covariance_guard"]
    assert guard["acted"] is True
    assert guard["folds"] == [
        {"n_states": 3, "fold": 1, "restarts_acted": 1, "per_restart": [0, 3]}
    ]
    assert "K=3 fold 1: 1/2 restarts" in guard_note(loud)
