"""What the Snakefile does with the config Snakemake gives it, before validating it.

Snakemake has already read the ``--configfile`` files (PyYAML: the last of two equal keys
wins silently) and merged ``--config`` into them. Here the files are read again with the
line-keeping loader, so that a key given twice stops the workflow with
``file:line: key 'n_bits' given twice (first at line 12)`` as ``trainmap check`` does, and
the ``--config`` values are typed as the schema expects (trainmap.config.overrides).
"""

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

from trainmap.config.loader import load_located
from trainmap.config.overrides import apply_overrides
from trainmap.config.settings import SCHEMA_PATH, load_yaml


def workflow_config(
    config: dict, configfiles: Sequence[str | Path], overrides: Mapping, default: Path
) -> dict:
    """The config to validate: Snakemake's ``config`` with its files checked for keys
    given twice and ``overrides`` (``--config``) typed; ``default`` is read only when
    neither files nor overrides were given (an empty file is never replaced by it).
    Always a new dict (the Snakefile replaces ``config``'s content with it)."""
    for path in configfiles:
        load_located(path)
    if not config and not configfiles:
        return load_located(default).data
    if overrides:
        return apply_overrides(config, overrides, load_yaml(SCHEMA_PATH))
    return copy.deepcopy(config)
