"""Training (rules train_run, unpack_run, unpack_probe_losses): the per-seed and the vectorised
loop, resume, bundles, and the function-space probe."""
