"""A job's log file: its log records, warnings and any uncaught error with its traceback.

Standard library only, so that light jobs start fast.
"""

import logging
import sys
from pathlib import Path


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> None:
    """Send this process's log records, Python warnings and any uncaught error (with its
    full traceback) to a rule's log file.

    The error also still goes to stderr, which on a cluster lands in the scheduler's log,
    not in the rule's own: the rule's log must say why the job failed.
    """
    logging.captureWarnings(True)
    _log_uncaught_errors()
    handler: logging.Handler = (
        logging.FileHandler(path, mode="w") if path else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _log_uncaught_errors() -> None:
    """Log an uncaught exception (with traceback) before Python prints it to stderr."""
    if getattr(sys.excepthook, "_trainmap", False):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            logging.getLogger("trainmap").critical(
                "the job failed: %s", value, exc_info=(kind, value, traceback)
            )
        previous(kind, value, traceback)

    hook._trainmap = True  # type: ignore[attr-defined]
    sys.excepthook = hook
