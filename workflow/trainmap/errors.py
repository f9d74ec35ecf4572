"""Errors the workflow reports to users before or instead of running a job."""


class ConfigError(ValueError):
    """A config value the workflow cannot run with; the message names key and value."""


class ConfigWarning(UserWarning):
    """A config value that runs but probably not as meant (an option with no effect)."""


class CorruptFileError(ValueError):
    """An intermediate file that cannot be read (truncated, damaged); names the file."""

    def __init__(self, path: object, problem: str):
        super().__init__(
            f"{path}: {problem}. The file is damaged or was cut short (a full disk, a copy "
            "that stopped): delete it and run Snakemake again to rebuild it, or rerun its "
            "rule with --forcerun"
        )
        self.path = path


class RecordError(ValueError):
    """A Recorder that cannot record as asked (trainmap.record): a weight selection that
    matches nothing, an unknown family, a value that is no scalar; names what was given."""


class LiveMapError(ValueError):
    """A map that cannot be used live, or a run that does not fit it (trainmap.live):
    no live.json, a per-run normalised map, features the run does not log, steps that go
    backwards; names what is missing and what to do."""
