"""Errors the workflow reports to users before or instead of running a job."""


class ConfigError(ValueError):
    """A config value the workflow cannot run with; the message names key and value."""
