"""Column names of the public result tables (CONTRACT.md), free of heavy imports."""

# The 14 weight metrics of METHOD.md section 2, in the contract's order.
METRIC_COLUMNS = [
    "l1",
    "l2",
    "code_sparsity",
    "trace",
    "spectral",
    "computational_sparsity",
    "mean_lambda",
    "variance_lambda",
    "mean_w",
    "median_w",
    "var_w",
    "mean_b",
    "median_b",
    "var_b",
]

# Per-checkpoint columns logged by every trained run, before the metrics.
RUN_COLUMNS = ["epoch", "train_loss", "eval_loss", "train_accuracy", "eval_accuracy"]

# Function space (probe:): each run's per-example losses on the probe set, one column per
# example, in runs/seed<seed>/probe_losses.parquet (trained runs and recorded runs alike).
PROBE_FILE = "probe_losses.parquet"


def probe_columns(n: int) -> list[str]:
    """``probe_<i>`` for i < n, zero-padded to the width of n-1 so that the columns sort in
    example order: ``probe_00 .. probe_63`` for 64."""
    width = len(str(max(n - 1, 0)))
    return [f"probe_{i:0{width}d}" for i in range(n)]
