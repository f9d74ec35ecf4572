"""Config: loading and validating the workflow config before any job runs (rules: all)."""
