"""trainmap: latent-state models of many seeded training runs.

The package holds all logic of the Snakemake workflow; the rules and scripts under
``workflow/`` are thin adapters around it.
"""

__version__ = "0.1.0"
