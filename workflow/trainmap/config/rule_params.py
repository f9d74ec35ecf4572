"""Params functions for the rules: a setting's value, a wildcard as a number.

A rule's ``params:`` take functions of the job's wildcards; most only look a value up, so
each is made here by one factory instead of a one-line getter per value in common.smk
(which keeps its input functions and paths, STYLE.md). Plain closures, not lambdas or
``functools.partial``: Snakemake reads the function's argument names to decide what to
pass it.
"""

from collections.abc import Callable, Mapping
from typing import Any

from trainmap.config.settings import Setting


def setting_value(settings: Mapping[str, Setting], field: str, *keys: str) -> Callable:
    """A params function: the job's setting's ``field`` (a ``Setting`` attribute), indexed
    by ``keys`` (``setting_value(SETTINGS, "hmm", "refit")``: ``setting.hmm["refit"]``)."""

    def value(wildcards) -> Any:
        found = getattr(settings[wildcards.setting], field)
        for key in keys:
            found = found[key]
        return found

    value.__name__ = ".".join(["setting", field, *keys])  # for Snakemake's messages
    return value


def wildcard_number(name: str) -> Callable:
    """A params function: the job's wildcard ``name`` as an int (a K, a fold, a resample)."""

    def value(wildcards) -> int:
        return int(wildcards[name])

    value.__name__ = f"wildcards.{name}"
    return value
