"""Sequence preparation (METHOD.md section 3): truncation, exclusion, z-scores, split."""

import numpy as np
import pandas as pd
import pytest

from trainmap.hmm.sequences import (
    SequenceError,
    check_state_counts,
    feature_columns,
    observations,
    prepare_sequences,
    split_runs,
)

FEATURES = ["a", "b", "c"]
OPTIONS = {"max_checkpoints": 1000, "normalize": "per_run", "val_fraction": 0.2, "seed": 0}


def trajectories(n_runs: int = 10, length: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tables = []
    for run in range(n_runs):
        values = rng.normal(loc=run, scale=1 + run, size=(length, len(FEATURES)))
        table = pd.DataFrame(values, columns=FEATURES)
        table.insert(0, "seed", run)
        table.insert(1, "step", np.arange(length) * 5)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table["diverged"] = False
    return table.sample(frac=1.0, random_state=1)  # any row order


def test_per_run_zscores_have_mean_zero_and_population_sd_one():
    prepared = prepare_sequences(trajectories(), FEATURES, **OPTIONS)
    table = prepared.table
    assert list(table.columns) == ["seed", "step", "split", *FEATURES]
    assert feature_columns(table) == FEATURES
    for _, run in table.groupby("seed"):
        assert run["step"].is_monotonic_increasing
        np.testing.assert_allclose(run[FEATURES].mean(), 0.0, atol=1e-12)
        np.testing.assert_allclose(run[FEATURES].std(ddof=0), 1.0, rtol=1e-12)
    assert prepared.constant_features == {}


def test_global_zscores_pool_all_included_runs():
    raw = trajectories()
    table = prepare_sequences(raw, FEATURES, **{**OPTIONS, "normalize": "global"}).table
    np.testing.assert_allclose(table[FEATURES].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(table[FEATURES].std(ddof=0), 1.0, rtol=1e-12)
    # one mean and SD per feature for all runs
    raw_a = raw.sort_values(["seed", "step"])["a"].to_numpy()
    expected = (raw_a - raw_a.mean()) / raw_a.std()
    np.testing.assert_allclose(table["a"], expected, rtol=1e-12)


def test_constant_feature_gets_zero_and_is_reported():
    raw = trajectories()
    raw.loc[raw["seed"] == 3, "b"] = 0.1  # constant within run 3 only
    prepared = prepare_sequences(raw, FEATURES, **OPTIONS)
    run3 = prepared.table[prepared.table["seed"] == 3]
    assert (run3["b"] == 0.0).all()
    assert np.isfinite(prepared.table[FEATURES].to_numpy()).all()
    assert prepared.constant_features == {"b": [3]}
    assert prepared.report()["constant_features"] == {"b": [3]}

    raw["c"] = 7.0  # constant everywhere: global z-scoring also gives 0
    prepared = prepare_sequences(raw, FEATURES, **{**OPTIONS, "normalize": "global"})
    assert (prepared.table["c"] == 0.0).all()
    assert prepared.constant_features == {"c": list(range(10))}


def test_truncation_keeps_the_first_checkpoints_and_shorter_runs_whole():
    raw = trajectories()
    raw = raw[~((raw["seed"] == 4) & (raw["step"] >= 40))]  # run 4: 8 checkpoints
    prepared = prepare_sequences(raw, FEATURES, **{**OPTIONS, "max_checkpoints": 12})
    lengths = prepared.table.groupby("seed").size()
    assert lengths[4] == 8
    assert (lengths.drop(4) == 12).all()
    assert prepared.table.loc[prepared.table["seed"] == 0, "step"].tolist() == list(range(0, 60, 5))
    X, run_lengths = observations(prepared.table, FEATURES)
    assert X.shape == (len(prepared.table), 3)
    assert run_lengths.tolist() == lengths.tolist()


def test_diverged_runs_are_excluded_and_listed():
    raw = trajectories()
    raw.loc[(raw["seed"] == 2) & (raw["step"] == 95), "c"] = np.nan  # past the kept window
    raw.loc[(raw["seed"] == 5) & (raw["step"] >= 30), "a"] = np.inf
    raw.loc[raw["seed"] == 7, "diverged"] = True  # flagged upstream
    prepared = prepare_sequences(raw, FEATURES, **{**OPTIONS, "max_checkpoints": 10})
    assert set(prepared.table["seed"]) == {0, 1, 3, 4, 6, 8, 9}
    reasons = {e["seed"]: e["reason"] for e in prepared.excluded}
    assert reasons == {
        2: "diverged: non-finite c from step 95",
        5: "diverged: non-finite a from step 30",
        7: "diverged: its diverged column marks it from step 0 (no loss column)",
    }
    report = prepared.report()
    assert [e["seed"] for e in report["excluded"]] == [2, 5, 7]
    assert sorted(report["fit_runs"] + report["val_runs"]) == [0, 1, 3, 4, 6, 8, 9]
    # without a diverged column the features alone decide
    prepared = prepare_sequences(raw.drop(columns="diverged"), FEATURES, **OPTIONS)
    assert [e["seed"] for e in prepared.excluded] == [2, 5]


def test_split_is_seeded_sorted_and_80_20():
    runs = list(range(40))
    fit, val = split_runs(runs[::-1], 0.2, seed=0)
    assert (len(fit), len(val)) == (32, 8)
    assert fit == sorted(fit) and val == sorted(val)
    assert sorted(fit + val) == runs
    assert split_runs(runs, 0.2, seed=0) == (fit, val)  # input order does not matter
    assert split_runs(runs, 0.2, seed=1) != (fit, val)
    assert [len(s) for s in split_runs(list(range(5)), 0.1, seed=0)] == [4, 1]
    assert [len(s) for s in split_runs(["r1", "r2"], 0.9, seed=0)] == [1, 1]


def test_prepared_table_marks_the_split():
    prepared = prepare_sequences(trajectories(n_runs=40, length=5), FEATURES, **OPTIONS)
    table = prepared.table
    assert set(table.loc[table["split"] == "val", "seed"]) == set(prepared.val_runs)
    assert set(table.loc[table["split"] == "fit", "seed"]) == set(prepared.fit_runs)
    assert prepared.report()["n_val_rows"] == 8 * 5


def test_string_run_ids_work():
    raw = trajectories(n_runs=5)
    raw["seed"] = raw["seed"].map(lambda s: f"run-{s}")
    prepared = prepare_sequences(raw, FEATURES, **OPTIONS)
    assert sorted(prepared.fit_runs + prepared.val_runs) == [f"run-{i}" for i in range(5)]


def test_too_few_runs_is_an_error_before_fitting():
    raw = trajectories(n_runs=3)
    raw.loc[raw["seed"] > 0, "a"] = np.nan
    with pytest.raises(SequenceError, match=r"1 usable run\(s\) \(2 excluded as diverged\)"):
        prepare_sequences(raw, FEATURES, **OPTIONS)
    with pytest.raises(SequenceError, match="need at least 2"):
        split_runs([0], 0.5, seed=0)


def test_state_count_above_fit_observations_is_an_error():
    # 4 fit runs x 3 = 12 fit rows (5 validation runs: at least 10 validation rows)
    raw = trajectories(n_runs=9, length=3)
    options = {**OPTIONS, "val_fraction": 0.5}
    prepare_sequences(raw, FEATURES, **options, states=[1, 12])
    with pytest.raises(SequenceError, match=r"K=\[13, 20\] exceed the 12 fit observations"):
        prepare_sequences(raw, FEATURES, **options, states=[2, 13, 20])
    with pytest.raises(SequenceError, match="K=\\[3\\]"):
        check_state_counts([1, 3], 2)


def test_bad_options_and_columns_are_errors():
    with pytest.raises(SequenceError, match="normalize"):
        prepare_sequences(trajectories(), FEATURES, **{**OPTIONS, "normalize": "none"})
    with pytest.raises(SequenceError, match=r"missing columns \['d'\]"):
        prepare_sequences(trajectories(), [*FEATURES, "d"], **OPTIONS)


def test_too_few_validation_rows_is_an_error_saying_what_to_do():
    """Runs of very different lengths can leave K chosen from a few validation rows."""
    raw = trajectories(n_runs=5, length=20)
    raw = raw[(raw["seed"] != 0) | (raw["step"] < 15)]  # run 0 (validation) has 3 rows
    message = r"validation split has 3 rows \(1 run\(s\) \[0\]\); choosing K needs at least 10"
    with pytest.raises(SequenceError, match=message + ".*raise hmm.val_fraction"):
        prepare_sequences(raw, FEATURES, **OPTIONS)


def test_a_run_of_one_checkpoint_is_an_error():
    raw = trajectories(n_runs=6)
    raw = raw[(raw["seed"] != 2) | (raw["step"] == 0)]
    with pytest.raises(SequenceError, match=r"run\(s\) \[2\] have fewer than 2 checkpoints"):
        prepare_sequences(raw, FEATURES, **OPTIONS)


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1.0])
@pytest.mark.parametrize("normalize", ["per_run", "global"])
def test_zscores_of_extreme_magnitudes_are_exact(scale, normalize):
    """Values near the float limits used to overflow the SD to inf (z = 0 everywhere) or
    underflow it; z-scores do not depend on the scale, and are bit-identical to those of
    the unscaled values when the scale is a power of two."""
    raw = trajectories()
    plain = prepare_sequences(raw, FEATURES, **{**OPTIONS, "normalize": normalize}).table
    big = raw.assign(a=raw["a"] * scale)
    table = prepare_sequences(big, FEATURES, **{**OPTIONS, "normalize": normalize}).table
    assert np.isfinite(table["a"]).all()
    np.testing.assert_allclose(table["a"], plain["a"], rtol=1e-9)
    exact = raw.assign(a=raw["a"] * 2.0**900)
    table = prepare_sequences(exact, FEATURES, **{**OPTIONS, "normalize": normalize}).table
    assert table["a"].tolist() == plain["a"].tolist()
