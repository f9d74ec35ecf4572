"""Synthetic runs with a planted training map, shared by the map, detour and plot tests.

A known 3-state Gaussian HMM: every run starts in state 0 and ends in state 2; with
``detour=True`` a subset of runs passes through state 1 on the way. Eval accuracy crosses
the threshold shortly after a run reaches state 2, so runs through state 1 converge later.
Feature ``var_w`` jumps in state 1 only; ``l1`` and ``l2`` rise from state 0 to state 2.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM

FEATURES = ["l1", "l2", "var_w", "spectral"]
MEANS = np.array(
    [
        [-1.5, -1.2, 0.0, 0.1],
        [0.0, 0.2, 2.5, 0.0],
        [1.5, 1.3, 0.0, -0.1],
    ]
)
LENGTH = 40
EVAL_EVERY = 10
THRESHOLD = 0.9
VARIANCE = 0.5
CONVERGENCE = {"column": "eval_accuracy", "threshold": THRESHOLD}


@dataclass
class Planted:
    model: GaussianHMM
    sequences: pd.DataFrame  # seed, step, split, FEATURES (z units)
    states: pd.DataFrame  # seed, step, state, split
    trajectories: pd.DataFrame  # seed, step, eval_accuracy, FEATURES, diverged
    detour_runs: list[int]


def planted_model() -> GaussianHMM:
    model = GaussianHMM(n_components=3, covariance_type="diag")
    model.n_features = len(FEATURES)
    model.startprob_ = np.array([1.0, 0.0, 0.0])
    model.transmat_ = np.array([[0.9, 0.05, 0.05], [0.0, 0.93, 0.07], [0.0, 0.0, 1.0]])
    model.means_ = MEANS
    model.covars_ = np.full((3, len(FEATURES)), VARIANCE)
    return model


def run_tables(run: int, path: np.ndarray, X: np.ndarray, accuracy: np.ndarray):
    """One run's rows: (sequence with its split, decoded states, trajectory); every fifth
    run is a validation run."""
    steps = EVAL_EVERY * (np.arange(LENGTH) + 1)
    frame = pd.DataFrame(X, columns=FEATURES)
    frame.insert(0, "seed", run)
    frame.insert(1, "step", steps)
    split = "val" if run % 5 == 0 else "fit"
    return (
        frame.assign(split=split),
        pd.DataFrame({"seed": run, "step": steps, "state": path, "split": split}),
        frame.assign(eval_accuracy=accuracy, diverged=False),
    )


def planted_runs(
    n_runs: int = 24, detour: bool = True, seed: int = 0, censor: tuple[int, ...] = ()
) -> Planted:
    """Runs 0..n_runs-1; with ``detour`` the first half visits state 1; runs in ``censor``
    never reach the threshold."""
    rng = np.random.default_rng(seed)
    model = planted_model()
    sequences, states, trajectories, detour_runs = [], [], [], []
    for run in range(n_runs):
        first = int(rng.integers(6, 12))
        if detour:
            middle = int(rng.integers(8, 16)) if run < n_runs // 2 else 0
        else:
            middle = int(rng.integers(4, 14))
        path = np.array([0] * first + [1] * middle + [2] * (LENGTH - first - middle))
        if middle and detour:
            detour_runs.append(run)
        X = MEANS[path] + rng.normal(scale=np.sqrt(VARIANCE), size=(LENGTH, len(FEATURES)))
        crossing = first + middle + int(rng.integers(0, 4))
        accuracy = np.where(np.arange(LENGTH) >= crossing, 0.95, 0.4)
        if run in censor:
            accuracy[:] = 0.4
        for tables, table in zip(
            (sequences, states, trajectories), run_tables(run, path, X, accuracy), strict=True
        ):
            tables.append(table)
    return Planted(
        model,
        pd.concat(sequences, ignore_index=True),
        pd.concat(states, ignore_index=True),
        pd.concat(trajectories, ignore_index=True),
        detour_runs,
    )


def paths_table(paths: dict[int, list[int]]) -> pd.DataFrame:
    """Decoded paths as a states table: ``seed, step, state``, steps 10, 20, ..."""
    rows = [
        {"seed": seed, "step": 10 * (t + 1), "state": s}
        for seed, path in paths.items()
        for t, s in enumerate(path)
    ]
    return pd.DataFrame(rows)


BRANCH_MEANS = np.array(
    [
        [-1.5, -1.2, 0.0, 0.1],  # 0: start
        [0.0, 0.0, 0.0, 1.0],  # 1: main road, every converged run
        [1.5, 1.3, 0.0, 0.0],  # 2: converged
        [0.0, 0.2, 2.5, 1.0],  # 3: slow side state, some converged runs
        [-1.5, -1.2, -2.5, -1.5],  # 4: branch of the runs that never converge
    ]
)


def branching_model() -> GaussianHMM:
    model = GaussianHMM(n_components=5, covariance_type="diag")
    model.n_features = len(FEATURES)
    model.startprob_ = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    model.transmat_ = np.array(
        [
            [0.85, 0.1, 0.0, 0.0, 0.05],
            [0.0, 0.9, 0.05, 0.05, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.07, 0.93, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],
        ]
    )
    model.means_ = BRANCH_MEANS
    model.covars_ = np.full((5, len(FEATURES)), VARIANCE)
    return model


def branching_runs(n_converged: int = 24, n_censored: int = 8, seed: int = 0) -> Planted:
    """Runs that never converge branch off to a state of their own (4) and skip the main
    road; converged runs share 0 -> 1 -> 2, half of them through a slow side state 3
    (1 -> 3 -> 2). Runs 0..n_censored-1 are the censored ones; ``detour_runs`` lists the
    converged runs through state 3."""
    rng = np.random.default_rng(seed)
    sequences, states, trajectories, side_runs = [], [], [], []
    for run in range(n_censored + n_converged):
        first = int(rng.integers(4, 8))
        if run < n_censored:
            path = [0] * first + [4] * (LENGTH - first)
            crossing = LENGTH  # never
        else:
            middle = int(rng.integers(6, 12))
            side = int(rng.integers(8, 14)) if (run - n_censored) % 2 else 0
            path = [0] * first + [1] * middle + [3] * side
            path += [2] * (LENGTH - len(path))
            crossing = first + middle + side + int(rng.integers(0, 3))
            if side:
                side_runs.append(run)
        path = np.array(path)
        X = BRANCH_MEANS[path] + rng.normal(scale=np.sqrt(VARIANCE), size=(LENGTH, len(FEATURES)))
        accuracy = np.where(np.arange(LENGTH) >= crossing, 0.95, 0.4)
        for tables, table in zip(
            (sequences, states, trajectories), run_tables(run, path, X, accuracy), strict=True
        ):
            tables.append(table)
    return Planted(
        branching_model(),
        pd.concat(sequences, ignore_index=True),
        pd.concat(states, ignore_index=True),
        pd.concat(trajectories, ignore_index=True),
        side_runs,
    )


def table_config(tmp_path, name: str, trajectories: pd.DataFrame, hmm: dict, **keys) -> dict:
    """A config of one ``source: table`` setting ``name`` over ``trajectories`` (written
    to ``<tmp_path>/<name>.csv``) with the planted features and convergence rule, the
    setting's other ``keys`` and the top-level ``hmm`` block."""
    table = tmp_path / f"{name}.csv"
    trajectories.to_csv(table, index=False)
    setting = {"source": "table", "table": str(table), "features": FEATURES,
               "convergence": CONVERGENCE}  # fmt: skip
    return {"settings": {name: {**setting, **keys}}, "hmm": hmm}
