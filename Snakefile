# trainmap: many seeded training runs -> a latent-state training map (README.md).
# This file only validates the config, includes one rule file per stage and defines `all`.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from trainmap.config.snakefile import workflow_config, workflow_settings

# A `configfile:` directive would resolve against the working directory and would be
# deep-merged with --configfile (mixing the default settings into the user's), so the
# default config is only loaded when none is given (an empty --configfile is refused by
# workflow_settings, never replaced by the default). The files are read again to refuse a
# key given twice; --config values are typed as the schema expects.
_checked = workflow_config(
    config,
    workflow.configfiles,
    workflow.config_settings.config,
    Path(workflow.basedir) / "config" / "config.yaml",
)
config.clear()
config.update(_checked)
SETTINGS = workflow_settings(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/checkpoints.smk"
include: "workflow/rules/hmm.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/detours.smk"
include: "workflow/rules/live.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
