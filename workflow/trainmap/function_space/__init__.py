"""Function space: the runs seen through their losses on a fixed probe set (PCA)."""
