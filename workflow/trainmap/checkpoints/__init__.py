"""Checkpoint series that exist already (rule compute_checkpoint_metrics, source: checkpoints)."""
