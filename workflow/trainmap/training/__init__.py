"""Training: the loop, seed-parallel groups, resuming, and the function-space probe."""
