"""Small messages: a typo in a table setting, an empty id cell, plain numbers in warnings."""

import logging

import numpy as np
import pandas as pd
import pytest

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.hmm.sequences import prepare_sequences
from trainmap.io.tables import TableError, load_run_table

TABLE = {"source": "table", "table": "t.csv", "convergence": {"column": "acc", "threshold": 0.9}}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "featurs",
            r"settings\.mine\.featurs: unknown key for source 'table'; did you mean 'features'",
        ),
        ("tabel", r"mine\.tabel: unknown key for source 'table'; did you mean 'table'"),
        ("n_bits", r"mine\.n_bits: a task hyperparameter; it only applies to source 'train'"),
        ("colour", r"mine\.colour: unknown key for source 'table' \(value 1\); keys of a table"),
    ],
)
def test_a_wrong_key_of_a_table_setting_is_named_with_a_suggestion(key, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"settings": {"mine": {**TABLE, key: 1}}})


@pytest.mark.parametrize("column", ["seed", "step"])
def test_an_empty_id_cell_asks_for_the_id_not_for_nan(tmp_path, column):
    path = tmp_path / "runs.csv"
    rows = pd.DataFrame({"seed": [0, 0, 1], "step": [0, 1, 0], "l2": [1.0, 2.0, 3.0], "acc": 0.5})
    text = rows.astype(str)
    text.loc[1, column] = ""
    text.to_csv(path, index=False)
    with pytest.raises(TableError) as error:
        load_run_table(path, ["l2"], "acc")
    message = str(error.value)
    assert f"column {column!r} has a missing value '' (data row 2)" in message
    assert "every row needs its run id and step" in message and "nan" not in message


def test_warnings_list_runs_as_plain_numbers(caplog):
    table = pd.DataFrame(
        {
            "seed": np.repeat(np.arange(6, dtype=np.int64), 4),
            "step": np.tile(np.arange(4), 6),
            "a": np.arange(24, dtype=float),
            "b": 1.0,  # constant everywhere
        }
    )
    options = {"max_checkpoints": 100, "val_fraction": 0.5, "seed": 0}
    with caplog.at_level(logging.WARNING):
        prepare_sequences(table, ["a", "b"], normalize="global", **options)
    assert "feature b is constant in run(s) [0, 1, 2, 3, 4, 5]" in caplog.text
    assert "np.int64" not in caplog.text
