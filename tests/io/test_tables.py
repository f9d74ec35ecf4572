"""Bring-your-own run tables (source: table): what is accepted, and every refusal."""

import numpy as np
import pandas as pd
import pytest

from trainmap.io.tables import TableError, load_run_table

FEATURES = ["l2", "spectral"]


def runs(n_runs: int = 3, length: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"seed": s, "step": 10 * t, "l2": rng.normal(), "spectral": rng.normal(), "acc": t / 4}
        for s in range(n_runs)
        for t in range(length)
    ]
    return pd.DataFrame(rows).iloc[::-1]  # unsorted on purpose


def write(table: pd.DataFrame, tmp_path, name: str = "runs.parquet"):
    path = tmp_path / name
    if name.lower().endswith(".csv"):
        table.to_csv(path, index=False, na_rep="nan")  # an empty cell is a missing value
    else:
        table.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("name", ["runs.parquet", "runs.csv", "RUNS.CSV"])
def test_reads_parquet_and_csv_sorted(tmp_path, name):
    table = runs().assign(extra="ignored")
    out = load_run_table(write(table, tmp_path, name), FEATURES, "acc")
    assert list(out.columns) == ["seed", "step", "l2", "spectral", "acc", "diverged"]
    assert out["seed"].dtype == np.int64 and out["step"].dtype == np.int64
    assert out[["seed", "step"]].values.tolist() == [
        [s, 10 * t] for s in range(3) for t in range(4)
    ]
    expected = table.sort_values(["seed", "step"])["l2"].to_numpy()
    np.testing.assert_allclose(out["l2"], expected, rtol=1e-15)
    assert not out["diverged"].any()


def test_run_ids_are_renamed_to_seed(tmp_path):
    table = runs().rename(columns={"seed": "run"})
    table["run"] = table["run"].map({0: "bert-a", 1: "bert-b", 2: "bert-c"})
    out = load_run_table(write(table, tmp_path), FEATURES, "acc")
    assert "run" not in out.columns
    assert out["seed"].unique().tolist() == ["bert-a", "bert-b", "bert-c"]


def test_whole_float_seeds_and_steps_are_integers(tmp_path):
    table = runs().astype({"seed": float, "step": float})
    out = load_run_table(write(table, tmp_path), FEATURES, "acc")
    assert out["seed"].dtype == np.int64 and out["step"].dtype == np.int64


def test_non_finite_features_mark_the_whole_run_diverged(tmp_path):
    table = runs()
    table.loc[(table["seed"] == 1) & (table["step"] == 20), "l2"] = np.inf
    table.loc[(table["seed"] == 2) & (table["step"] == 30), "spectral"] = np.nan
    table.loc[table["seed"] == 0, "acc"] = np.nan  # convergence column: not a feature
    out = load_run_table(write(table, tmp_path, "runs.csv"), FEATURES, "acc")
    assert out.groupby("seed")["diverged"].all().to_dict() == {0: False, 1: True, 2: True}
    assert out.groupby("seed")["diverged"].any().to_dict() == {0: False, 1: True, 2: True}


@pytest.mark.parametrize("cell", ["", "n/a", "NA", "null", " N/A "])
def test_missing_csv_cells_are_errors_not_divergence(tmp_path, cell):
    """pandas reads these as NaN, which used to mark the run diverged."""
    text = f"seed,step,l2,spectral,acc\n0,0,1.0,2.0,0.1\n0,10,1.5,{cell},0.2\n"
    (tmp_path / "runs.csv").write_text(text)
    message = f"runs.csv: column 'spectral' has a missing value '{cell}' \\(data row 2\\)"
    with pytest.raises(TableError, match=message + ".*write a diverged run's values as nan"):
        load_run_table(tmp_path / "runs.csv", FEATURES, "acc")


def test_spelled_out_nan_and_inf_in_csv_mark_divergence(tmp_path):
    text = "seed,step,l2,spectral,acc\n0,0,1.0,2.0,0.1\n0,10,nan,2.0,0.2\n1,0,1.0,2.0,0.1\n"
    (tmp_path / "runs.csv").write_text(text + "1,10,1.0,-inf,0.3\n2,0,1.0,2.0,0.1\n")
    out = load_run_table(tmp_path / "runs.csv", FEATURES, "acc")
    assert out.groupby("seed")["diverged"].all().to_dict() == {0: True, 1: True, 2: False}


def test_parquet_nulls_in_ids_are_errors(tmp_path):
    table = runs().astype({"step": "Int64"})
    table.iloc[2, 1] = pd.NA
    with pytest.raises(TableError, match=r"column 'step' has a missing value \(null, data row 3"):
        load_run_table(write(table, tmp_path), FEATURES, "acc")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="seed"), "missing run id column 'seed' \\(integer\\) or 'run'"),
        (lambda t: t.drop(columns="step"), "missing column 'step'"),
        (lambda t: t.drop(columns="spectral"), "missing column 'spectral'"),
        (lambda t: t.drop(columns="acc"), "missing column 'acc'"),
        (
            lambda t: t.assign(l2=["1.5", "x"] + ["1.0"] * 10),
            "column 'l2' must be numeric; found 'x' \\(data row 2\\)",
        ),
        (lambda t: t.assign(acc=True), "column 'acc' must be numeric, not boolean"),
        (lambda t: t.assign(step=t["step"] + 0.5), "column 'step' must hold integers; found 30.5"),
        (
            lambda t: t.assign(seed=t["seed"] * 0.5),
            "column 'seed' must hold integers; found 0.5 \\(data row 5\\)",
        ),
        (
            lambda t: t.assign(seed=t["seed"].astype(str).str.replace("2", "two")),
            "column 'seed' must be numeric; found 'two'",
        ),
        (
            lambda t: pd.concat([t, t.iloc[[3]]]),
            "duplicate \\(seed, step\\) rows, e.g. seed=2 step=0 \\(2 rows",
        ),
        (lambda t: t.iloc[:0], "the table has no rows"),
    ],
)
@pytest.mark.parametrize("name", ["runs.parquet", "runs.csv"])
def test_bad_tables_name_file_and_column(tmp_path, name, change, message):
    path = write(change(runs()), tmp_path, name)
    with pytest.raises(TableError, match=f"{path}: {message}"):
        load_run_table(path, FEATURES, "acc")


def test_missing_run_ids_and_duplicate_run_steps(tmp_path):
    table = runs().rename(columns={"seed": "run"}).astype({"run": object})
    table.iloc[5, 0] = None
    with pytest.raises(TableError, match="column 'run' has a missing id"):
        load_run_table(write(table, tmp_path), FEATURES, "acc")
    table = pd.concat([runs(), runs().iloc[:1]]).rename(columns={"seed": "run"})
    with pytest.raises(TableError, match="duplicate \\(run, step\\) rows, e.g. run=2 step=30"):
        load_run_table(write(table, tmp_path), FEATURES, "acc")


def test_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(TableError, match="unknown table format '.xlsx'; use one of .parquet, .csv"):
        load_run_table(tmp_path / "runs.xlsx", FEATURES, "acc")
    with pytest.raises(TableError, match="runs.parquet: no such file"):
        load_run_table(tmp_path / "runs.parquet", FEATURES, "acc")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TableError, match="bad.parquet: is named .parquet but is not a Parquet"):
        load_run_table(tmp_path / "bad.parquet", FEATURES, "acc")


def test_table_error_is_a_value_error():
    assert issubclass(TableError, ValueError)
