"""Config: loading YAML with line numbers, validating settings, checking a config file."""
