"""Training (rules train_run, unpack_run): the per-seed and the vectorised loop, resume, bundles."""
