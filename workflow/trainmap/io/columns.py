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
