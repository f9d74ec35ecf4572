"""PCA of the per-checkpoint loss vectors of every run of a setting.

Each checkpoint of each run is a point in R^n (its losses on the n probe examples,
``probe_losses.parquet``); scikit-learn's PCA, fit on every checkpoint of every run at
once (centred, not scaled: all coordinates are losses in the same units), gives the
function-space coordinates ``pc1..pcK``. The PCA is fit on all runs: used as HMM features
they are not independent of any one run.

Deterministic: the full SVD (no randomised solver), rows sorted by seed and step, and a
sign convention of our own on top of scikit-learn's: each component is flipped so that its
largest-magnitude loading (the first such probe example on ties) is positive.

Checkpoints whose losses are not all finite (a diverged run's last rows) and probe
examples without a finite loss anywhere (a masked-LM block with no chosen token) are left
out, and counted in the summary.

The fit runs once per setting, before the HMM (rule fit_function_space):
``coords_table`` is ``pca/coords.parquet`` (every checkpoint, NaN where left out),
which rule map_function_space joins to the decoded states and rule collect_trajectories
joins to the trajectories when ``features`` name ``pc1``, ``pc2``, ...
(trainmap.function_space.features).
"""

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

ID_COLUMNS = ("seed", "step")
SIGN_CONVENTION = "each component's largest-magnitude loading is positive"


def loss_matrix(tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Stack the runs' probe_losses tables: (ids ``seed, step``, losses (rows, n), names).

    Every table must have the same probe columns, in the same order.
    """
    if not tables:
        raise ValueError("function space: no probe_losses tables")
    columns = [c for c in tables[0].columns if c.startswith("probe_")]
    for table in tables:
        found = [c for c in table.columns if c.startswith("probe_")]
        if found != columns:
            seed = table["seed"].iloc[0] if len(table) else "?"
            raise ValueError(
                f"function space: seed {seed}'s probe columns differ from the first run's "
                f"({len(found)} vs {len(columns)}): were the runs trained with one probe?"
            )
    stacked = pd.concat(tables, ignore_index=True).sort_values(list(ID_COLUMNS), kind="stable")
    ids = stacked[list(ID_COLUMNS)].reset_index(drop=True)
    return ids, stacked[columns].to_numpy(dtype=np.float64), columns


def fit_function_space(losses: np.ndarray, n_components: int) -> dict:
    """PCA of the loss vectors. losses: (rows, n_examples).

    Returns ``coords`` (rows, K) with NaN rows where a checkpoint was left out,
    ``components`` (K, n_examples), ``explained_variance_ratio`` and
    ``explained_variance`` (K,), ``kept_rows`` (rows,) bool, ``kept_examples``
    (n_examples,) bool; K = min(n_components, kept rows, kept examples).
    """
    examples = np.isfinite(losses).any(axis=0)
    rows = np.isfinite(losses[:, examples]).all(axis=1)
    X = losses[np.ix_(rows, examples)]
    k = min(n_components, X.shape[0], X.shape[1])
    if k < 1:
        raise ValueError("function space: no checkpoint has finite losses on the probe set")
    pca = PCA(n_components=k, svd_solver="full").fit(X)
    components = pca.components_.copy()
    top = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(k), top])
    components *= signs[:, None]
    coords = np.full((len(losses), k), np.nan)
    coords[rows] = (X - pca.mean_) @ components.T
    return {
        "coords": coords,
        "components": components,
        "explained_variance_ratio": pca.explained_variance_ratio_,
        "explained_variance": pca.explained_variance_,
        "kept_rows": rows,
        "kept_examples": examples,
    }


def coords_table(ids: pd.DataFrame, coords: np.ndarray) -> pd.DataFrame:
    """``seed, step, pc1..pcK`` of every checkpoint, NaN where it was left out."""
    names = [f"pc{i + 1}" for i in range(coords.shape[1])]
    return pd.concat([ids, pd.DataFrame(coords, columns=names)], axis=1)


def function_space_table(ids: pd.DataFrame, coords: np.ndarray, states: pd.DataFrame):
    """``seed, step, pc1..pcK, state`` (state: the decoded state, <NA> where the HMM saw
    no such checkpoint); rows left out of the PCA are dropped."""
    table = coords_table(ids, coords)
    table = table[np.isfinite(coords).all(axis=1)]
    table = table.merge(states[["seed", "step", "state"]], on=["seed", "step"], how="left")
    table["state"] = table["state"].astype("Int64")
    return table.reset_index(drop=True)


def summary(fit: dict, ids: pd.DataFrame, columns: list[str]) -> dict:
    """function_space.json: explained variance and what was left out."""
    return {
        "n_components": int(fit["components"].shape[0]),
        "explained_variance_ratio": [float(v) for v in fit["explained_variance_ratio"]],
        "explained_variance": [float(v) for v in fit["explained_variance"]],
        "n_runs": int(ids["seed"].nunique()),
        "n_checkpoints": int(fit["kept_rows"].sum()),
        "n_examples": int(fit["kept_examples"].sum()),
        "left_out_checkpoints": int((~fit["kept_rows"]).sum()),
        "left_out_examples": [
            c for c, k in zip(columns, fit["kept_examples"], strict=True) if not k
        ],
        "centered": True,
        "scaled": False,
        "sign_convention": SIGN_CONVENTION,
    }
