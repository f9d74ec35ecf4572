"""What the Snakefile does with the config Snakemake gives it: read, type, validate.

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
from trainmap.config.settings import SCHEMA_PATH, Setting, load_yaml, validate_config


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


def workflow_settings(config: dict) -> dict[str, Setting]:
    """The validated settings (``validate_config``), local checkpoint series also checked
    from their files' names and shapes (``trainmap.checkpoints.validate``)."""
    settings = validate_config(config)
    if not any(s.source == "checkpoints" for s in settings.values()):
        return settings
    # torch and transformers load only for a config with checkpoint series (~5-10 s)
    from trainmap.checkpoints.validate import check_checkpoint_settings

    return check_checkpoint_settings(settings)
