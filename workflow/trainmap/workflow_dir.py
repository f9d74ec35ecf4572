"""Where the workflow's files are: inside the installed package, or the checkout.

A wheel carries the Snakefile, rules, scripts, schemas, profiles, envs and the default
config in ``trainmap/_workflow/`` (setup.py copies them, laid out as in the repository);
a checkout (or an editable install of one) has them around ``workflow/trainmap/``. Both
give the same tree: ``Snakefile``, ``workflow/{rules,scripts,schemas,report}``,
``config/config.yaml``, ``profiles/<name>/``, ``envs/``.
"""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGED = PACKAGE / "_workflow"
CHECKOUT = PACKAGE.parents[1]


def workflow_dir() -> Path:
    """The folder holding the Snakefile and the tree around it."""
    for folder in (PACKAGED, CHECKOUT):
        if (folder / "Snakefile").is_file() and (folder / "workflow" / "rules").is_dir():
            return folder
    raise FileNotFoundError(
        f"trainmap's workflow files are neither in {PACKAGED} (an installed wheel) nor in "
        f"{CHECKOUT} (a checkout): reinstall trainmap"
    )
