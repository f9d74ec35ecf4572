"""Property-based tests over malformed configs and run tables (hypothesis).

Every generated case must end in a named error (``ConfigError``, ``TableError``,
``SequenceError``, each naming the key or file) or in a documented handling whose result
is checked, never in a library's traceback and never in a silently wrong result.
Examples are few and derandomized, so the file adds seconds to the suite.
"""

import copy
import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError, ConfigWarning
from trainmap.hmm.sequences import SequenceError, prepare_sequences
from trainmap.io.tables import MISSING_MARKERS, TableError, load_run_table

FEW = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure in CI reproduces
    database=None,  # no .hypothesis/ folder written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BASE = {
    "settings": {
        "parity": {
            "source": "train",
            "task": "sparse_parity",
            "seeds": 4,
            "n_bits": 12,
            "hidden": 16,
            "epochs": 5,
            "features": ["l2", "spectral"],
            "convergence": {"column": "eval_accuracy", "threshold": 0.9},
        },
        "mine": {
            "source": "table",
            "table": "runs.csv",
            "features": ["a", "b"],
            "convergence": {"column": "acc", "threshold": 0.5},
        },
    },
    "hmm": {"states": [1, 2], "val_fraction": 0.2},
    "detours": {"alpha": 0.01},
}
# Where a value can go wrong: setting keys of both sources, task keys, hmm and detours.
PATHS = [
    *[("settings", "parity", key) for key in ("source", "task", "seeds", "seeds_per_job",
      "resume_every", "vectorize", "features", "convergence", "alpha", "hmm", "table", "lr",
      "momentum", "betas", "optimizer", "batch_size", "epochs", "eval_every", "n_bits", "k",
      "hidden", "n_train", "n_eval", "device", "p", "train_fraction", "grokking")],
    *[("settings", "mine", key) for key in ("source", "table", "features", "convergence",
      "seeds", "task", "lr", "hmm")],
    ("settings", "parity", "convergence", "column"),
    ("settings", "parity", "convergence", "threshold"),
    ("settings", "mine", "convergence", "column"),
    *[("hmm", key) for key in ("states", "restarts", "n_iter", "covariance", "normalize",
      "val_fraction", "max_checkpoints", "seed", "tol", "min_covar", "extra")],
    ("detours", "alpha"),
    ("settings",),
    ("unknown_top_level",),
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "sgd", "adamw", "step", "seed", "l2", "eval_accuracy", "0.1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["column", "a"]), inner)
    ),
    max_leaves=6,
)


def set_path(config: dict, path: tuple, value) -> None:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@FEW
@given(path=st.sampled_from(PATHS), value=values, delete=st.booleans())
def test_a_malformed_config_is_refused_by_name_or_used_as_given(path, value, delete):
    config = copy.deepcopy(BASE)
    if delete:
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent.pop(path[-1], None)
    else:
        set_path(config, path, value)
    try:
        with pytest.warns(ConfigWarning) if _warns(path, value, delete) else _nothing():
            settings_ = validate_config(config)
    except ConfigError as error:
        text = str(error)
        assert text.strip() and "Traceback" not in text
        named = {"config", "settings", "hmm", "detours", *map(str, path)}
        assert any(name in text for name in named), text
        return
    # Accepted: the value must be in effect where it was put, never silently dropped.
    if delete or path[0] == "unknown_top_level":
        return
    if path[0] == "settings" and len(path) >= 3:
        setting = settings_[path[1]]
        key = path[2]
        if key in setting.params:
            got = setting.params[key]
            assert list(got) == value if isinstance(got, tuple) else got == value
        elif key == "hmm":
            assert all(setting.hmm[k] == v for k, v in value.items())
        elif key == "convergence" and len(path) == 4:
            assert setting.convergence[path[3]] == value
        elif key in ("features", "convergence", "alpha", "table", "source", "task"):
            assert getattr(setting, key) == value
        elif key == "seeds":
            assert setting.seeds == (list(range(value)) if isinstance(value, int)
                                     else sorted(value))  # fmt: skip
        elif key in ("seeds_per_job", "resume_every"):
            assert getattr(setting, key) == value
        elif key == "vectorize":  # YAML booleans are normalised to "true"/"false"
            assert setting.vectorize == str(value).lower()
        else:
            pytest.fail(f"{path} = {value!r} accepted but not found in the setting")
    _assert_finite_numbers(settings_)


def _warns(path, value, delete) -> bool:
    """Options with no effect warn: momentum with adamw never applies to sparse_parity's
    sgd, but betas does, when given a valid value."""
    return (
        not delete
        and path == ("settings", "parity", "betas")
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) and 0 <= v < 1 for v in value)
    )


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _assert_finite_numbers(settings_) -> None:
    for setting in settings_.values():
        for value in [*setting.params.values(), *setting.hmm.values(), setting.alpha]:
            if isinstance(value, float):
                assert math.isfinite(value)


# --- run tables ---------------------------------------------------------------------------

FEATURES = ["a", "b"]


def good_table(n_runs: int, length: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = [
        {"seed": s, "step": 10 * t, "a": rng.normal(), "b": rng.normal() * 1e3, "acc": t / 8}
        for s in range(n_runs)
        for t in range(length)
    ]
    return pd.DataFrame(rows)


CELLS = st.one_of(
    st.sampled_from(sorted(MISSING_MARKERS | {"N/A", "NULL", " ", "abc", "1,5", "True"})),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "1e-320", "7"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
MUTATIONS = st.sampled_from(
    ["cell", "drop_column", "duplicate_row", "fractional_step", "empty", "truncate", "noise"]
)


@FEW
@given(
    seed=st.integers(0, 10**6),
    n_runs=st.integers(1, 6),
    length=st.integers(1, 8),
    mutation=MUTATIONS,
    cell=CELLS,
    column=st.sampled_from(["seed", "step", "a", "b", "acc"]),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_a_malformed_table_is_refused_by_name_or_read_exactly(
    tmp_path_factory, seed, n_runs, length, mutation, cell, column, suffix
):
    rng = np.random.default_rng(seed)
    table = good_table(n_runs, length, rng)
    path = tmp_path_factory.mktemp("table") / f"runs{suffix}"
    text = table.to_csv(index=False, na_rep="nan")
    inserted = None
    if mutation == "cell":
        lines = text.splitlines()
        row = 1 + int(rng.integers(len(lines) - 1))
        cells = lines[row].split(",")
        index = ["seed", "step", "a", "b", "acc"].index(column)
        cells[index] = cell
        lines[row] = ",".join(cells)
        text = "\n".join(lines) + "\n"
        inserted = cell
    elif mutation == "drop_column":
        text = table.drop(columns=column).to_csv(index=False)
    elif mutation == "duplicate_row":
        text = pd.concat([table, table.iloc[[0]]]).to_csv(index=False)
    elif mutation == "fractional_step":
        text = table.assign(step=table["step"] + 0.5).to_csv(index=False)
    elif mutation == "empty":
        text = "" if rng.random() < 0.5 else "seed,step,a,b,acc\n"
    data = text.encode()
    if mutation == "truncate":
        data = data[: int(rng.integers(len(data)))]
    elif mutation == "noise":
        data = bytes(rng.integers(0, 256, size=64, dtype=np.uint8))
    path.write_bytes(data)
    if suffix == ".parquet" and mutation not in ("truncate", "noise"):
        try:  # every column as text: the reader must convert (or refuse) the values
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            frame.to_parquet(path, index=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            pass  # no table to convert: the file keeps the text (not Parquet)
    try:
        out = load_run_table(path, FEATURES, "acc")
    except TableError as error:
        assert str(error).startswith(f"{path}: "), error
        return
    # Accepted: a missing value must never have become a "diverged" NaN.
    if inserted is not None:
        assert inserted.strip().lower() not in MISSING_MARKERS
    assert list(out.columns) == ["seed", "step", *FEATURES, "acc", "diverged"]
    assert not out.duplicated(["seed", "step"]).any()
    assert out.equals(out.sort_values(["seed", "step"]).reset_index(drop=True))
    finite = np.isfinite(out[FEATURES].to_numpy()).all(axis=1)
    expected = ~pd.Series(finite).groupby(out["seed"]).transform("all")
    assert (out["diverged"] == expected).all()
    if mutation in ("truncate", "noise"):
        return
    source = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=["nan"])
    source = source.sort_values(["seed", "step"]).reset_index(drop=True)
    for name in FEATURES:
        got, want = out[name].to_numpy(), pd.to_numeric(source[name]).to_numpy(float)
        assert np.array_equal(got, want, equal_nan=True), name
    # What an accepted table feeds next ends in z-scores or a named SequenceError.
    try:
        prepared = prepare_sequences(
            out, FEATURES, max_checkpoints=1000, normalize="per_run", val_fraction=0.5, seed=0
        )
    except SequenceError as error:
        assert str(error).strip()
        return
    assert np.isfinite(prepared.table[FEATURES].to_numpy()).all()
