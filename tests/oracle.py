"""The weight metrics of METHOD.md section 2 written out with NumPy: the tests' oracle."""

import math

import numpy as np

from trainmap.io.columns import METRIC_COLUMNS

MATRIX_KEYS = METRIC_COLUMNS[:8]


def numpy_metrics(
    matrices: list[np.ndarray],
    kernels: list[np.ndarray] = (),
    weights: list[np.ndarray] = (),
    biases: list[np.ndarray] = (),
) -> dict[str, float]:
    """The oracle: METHOD.md section 2 written out one matrix at a time with NumPy."""
    per: dict[str, list[float]] = {k: [] for k in MATRIX_KEYS}
    for w in matrices:
        w = np.asarray(w, dtype=np.float64)
        s = np.linalg.svd(w, compute_uv=False)
        lam = np.where(s < 1e-5, 0.0, s)
        l1, l2, trace = np.abs(w).sum(), np.sqrt((w**2).sum()), np.trace(w)
        per["l1"].append(l1)
        per["l2"].append(l2)
        per["code_sparsity"].append(l1 / l2)
        per["trace"].append(trace)
        per["spectral"].append(s.max())
        per["computational_sparsity"].append(trace / s.max())
        per["mean_lambda"].append(lam.mean())
        if s.size > 1:
            per["variance_lambda"].append(lam.var())
    for k in kernels:
        k = np.asarray(k, dtype=np.float64)
        slices = k.reshape(-1, k.shape[2], k.shape[3])
        l1s = np.array([np.abs(x).sum() for x in slices])
        l2s = np.array([np.linalg.norm(x, "fro") for x in slices])
        per["l1"].append(l1s.mean())
        per["l2"].append(l2s.mean())
        per["code_sparsity"].append((l1s / l2s).mean())
    out = {k: float(np.mean(v)) if v else math.nan for k, v in per.items()}
    for suffix, tensors in (("w", weights), ("b", biases)):
        x = np.concatenate([np.ravel(t) for t in tensors]).astype(np.float64) if tensors else None
        out[f"mean_{suffix}"] = float(np.mean(x)) if x is not None else math.nan
        out[f"median_{suffix}"] = float(np.median(x)) if x is not None else math.nan
        out[f"var_{suffix}"] = float(np.var(x)) if x is not None else math.nan
    return out
