"""A table's format is told by its content; a wrong suffix or a directory is named."""

import pytest
from test_tables import FEATURES, runs

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.provenance import file_digest
from trainmap.io.tables import TableError, load_run_table, table_format


def test_parquet_named_csv_is_named_not_parsed(tmp_path):
    path = tmp_path / "runs.csv"
    runs().to_parquet(path, index=False)
    with pytest.raises(TableError, match=r"runs\.csv: is a Parquet file .* rename it to \.parquet"):
        load_run_table(path, FEATURES, "acc")


def test_csv_named_parquet_is_named(tmp_path):
    path = tmp_path / "runs.parquet"
    runs().to_csv(path, index=False)
    with pytest.raises(TableError, match=r"is named \.parquet but is not a Parquet file .* \.csv"):
        load_run_table(path, FEATURES, "acc")


def test_unknown_suffix_says_what_the_content_is(tmp_path):
    path = tmp_path / "runs.dat"
    runs().to_parquet(path, index=False)
    with pytest.raises(TableError, match=r"unknown table format '\.dat'.*content is Parquet"):
        load_run_table(path, FEATURES, "acc")


@pytest.mark.parametrize("name", ["runs.parquet", "runs.csv"])
def test_matching_suffix_reads(tmp_path, name):
    path = tmp_path / name
    table = runs()
    getattr(table, "to_parquet" if name.endswith("parquet") else "to_csv")(path, index=False)
    assert table_format(path) == name.rsplit(".", 1)[1]
    assert len(load_run_table(path, FEATURES, "acc")) == len(table)


def test_a_directory_where_a_table_is_expected_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "runs.parquet"
    folder.mkdir()
    with pytest.raises(TableError, match=r"runs\.parquet: is a directory; a table is one"):
        load_run_table(folder, FEATURES, "acc")
    with pytest.raises(IsADirectoryError, match=r"runs\.parquet: is a directory where a file"):
        file_digest(folder)
    monkeypatch.chdir(tmp_path)
    setting = {
        "source": "table",
        "table": "runs.parquet",
        "convergence": {"column": "acc", "threshold": 0.5},
    }
    with pytest.raises(ConfigError, match=r"settings\.mine\.table: 'runs\.parquet' is a directory"):
        validate_config({"settings": {"mine": setting}})


def test_empty_csv_is_a_table_error(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("")
    with pytest.raises(TableError, match="cannot read the table"):
        load_run_table(path, FEATURES, "acc")
