"""Time trainmap.metrics.weights.compute_metrics against the straightforward per-matrix version.

Run: ``.venv/bin/python bench/bench_metrics.py [--reps N]``. One thread, as the training jobs
use. Prints ms per checkpoint for both, the speed-up, and the largest relative difference
between their 14 numbers (they must agree).
"""

import argparse
import math
import platform
import time
from collections.abc import Callable

import torch

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.weights import WeightGroups, compute_metrics
from trainmap.tasks.mlp import MLP
from trainmap.tasks.modular_addition.model import OneLayerTransformer


@torch.no_grad()
def compute_metrics_reference(groups: WeightGroups) -> dict[str, float]:
    """The straightforward way: one matrix at a time, a spectral norm and a separate SVD each.

    Same float64 numerics and definitions as compute_metrics (so the numbers must agree); the
    median is the mean of the two middle order statistics from two ``kthvalue`` selections.
    """
    per: dict[str, list[float]] = {k: [] for k in METRIC_COLUMNS[:8]}
    for w in groups.matrices:
        w = w.double()
        l1 = torch.linalg.vector_norm(w, ord=1).item()
        l2 = torch.linalg.vector_norm(w, ord=2).item()
        trace = torch.diagonal(w).sum().item()
        spectral = torch.linalg.matrix_norm(w, ord=2).item()
        s = torch.linalg.svdvals(w)
        s[s < 1e-5] = 0.0
        per["l1"].append(l1)
        per["l2"].append(l2)
        per["code_sparsity"].append(l1 / l2)
        per["trace"].append(trace)
        per["spectral"].append(spectral)
        per["computational_sparsity"].append(trace / spectral)
        per["mean_lambda"].append(s.mean().item())
        if s.numel() > 1:
            per["variance_lambda"].append(s.var(correction=0).item())
    for k in groups.kernels:
        k = k.double()
        l1s = torch.linalg.vector_norm(k, ord=1, dim=(2, 3))
        l2s = torch.linalg.vector_norm(k, ord=2, dim=(2, 3))
        per["l1"].append(l1s.mean().item())
        per["l2"].append(l2s.mean().item())
        per["code_sparsity"].append((l1s / l2s).mean().item())
    out = {k: sum(v) / len(v) if v else math.nan for k, v in per.items()}
    for suffix, tensors in (("w", groups.weights), ("b", groups.biases)):
        if not tensors:
            out[f"mean_{suffix}"] = out[f"median_{suffix}"] = out[f"var_{suffix}"] = math.nan
            continue
        x = torch.cat([t.reshape(-1) for t in tensors]).double()
        n = x.numel()
        lo, hi = torch.kthvalue(x, (n + 1) // 2).values, torch.kthvalue(x, n // 2 + 1).values
        out[f"mean_{suffix}"] = x.mean().item()
        out[f"median_{suffix}"] = ((lo + hi) / 2).item()
        out[f"var_{suffix}"] = x.var(correction=0).item()
    return {k: out[k] for k in METRIC_COLUMNS}


def time_pair(
    fast: Callable[[], object], ref: Callable[[], object], reps: int, rounds: int
) -> tuple[float, float]:
    """Best-of-``rounds`` ms per call of each, rounds interleaved so load hits both alike.

    CPU time of this process, not wall time: on a shared machine other jobs' time slices then
    do not count, and with one torch thread it is the time the computation itself took.
    """
    fast(), ref()
    best_fast = best_ref = math.inf
    for _ in range(rounds):
        for fn, is_fast in ((fast, True), (ref, False)):
            start = time.process_time()
            for _ in range(reps):
                fn()
            ms = (time.process_time() - start) / reps * 1e3
            if is_fast:
                best_fast = min(best_fast, ms)
            else:
                best_ref = min(best_ref, ms)
    return best_fast, best_ref


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_rel_diff(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest relative difference over the 14 metrics; NaN in both counts as equal."""
    diffs = [
        0.0 if math.isnan(a[k]) and math.isnan(b[k]) else abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
        for k in METRIC_COLUMNS
    ]
    return math.inf if any(math.isnan(d) for d in diffs) else max(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="calls per timing round")
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)

    transformer = OneLayerTransformer(
        vocab=114, n_classes=113, ctx=3, d_model=128, n_heads=4, d_head=32, d_mlp=512,
        layer_norm=False,
    )  # fmt: skip
    mlp = MLP([40, 128, 1])
    for model in (transformer, mlp):
        model.reset_parameters(gen)
        with torch.no_grad():  # trained biases are not zero; do not time a degenerate median
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1, generator=gen)

    print(f"torch {torch.__version__}, {platform.machine()}, {cpu_name()}")
    print(f"1 thread; CPU ms per checkpoint, best of {args.rounds} rounds x {args.reps} calls")
    print(f"{'model':<24}{'compute_metrics':>17}{'reference':>12}{'speed-up':>10}{'max rel':>10}")
    mlp_groups, tf_groups = mlp.weight_groups(), transformer.weight_groups()
    cases = [
        ("transformer (default)", tf_groups),
        ("  its 15 matrices only", WeightGroups(tf_groups.matrices)),
        (
            "  its pooled w, b only",
            WeightGroups([], weights=tf_groups.weights, biases=tf_groups.biases),
        ),
        ("MLP 40-128-1", mlp_groups),
    ]
    for label, groups in cases:
        fast, ref = compute_metrics(groups), compute_metrics_reference(groups)
        diff = max_rel_diff(fast, ref)
        assert diff < 1e-9, f"{label}: results differ by {diff:.2e}"
        t_fast, t_ref = time_pair(
            lambda g=groups: compute_metrics(g),
            lambda g=groups: compute_metrics_reference(g),
            args.reps,
            args.rounds,
        )
        print(f"{label:<24}{t_fast:>14.3f} ms{t_ref:>9.3f} ms{t_ref / t_fast:>9.2f}x{diff:>10.1e}")


if __name__ == "__main__":
    main()
