"""Tasks: per task its hyperparameters (torch-free params), data and model (task, model).

Importing this package imports no torch: config validation reads trainmap.tasks.hyperparameters;
the torch side is trainmap.tasks.registry.
"""
