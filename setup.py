"""Build hook: the workflow ships inside the wheel (README "Install").

The Snakefile, rules, scripts, schemas, report captions, profiles, conda envs and the
default config are copied into ``trainmap/_workflow/``, laid out as in the repository, so
that the Snakefile's relative paths hold and ``trainmap run`` runs it from any directory
(``trainmap.workflow_dir``). Everything else is configured in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Whole folders, so that a new rule, script or profile ships without being listed here.
# MANIFEST.in names the same paths for the sdist (tests/test_package.py compares them).
WORKFLOW_PATHS = [
    "Snakefile",
    "config/config.yaml",
    "workflow/rules",
    "workflow/scripts",
    "workflow/schemas",
    "workflow/report",
    "profiles",
    "envs",
]
PACKAGED = Path("trainmap") / "_workflow"
IGNORE = shutil.ignore_patterns("__pycache__", "*.py[cod]")


class BuildWithWorkflow(build_py):
    """build_py that also copies WORKFLOW_PATHS under trainmap/_workflow/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install runs the checkout's own files
            return
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)  # a file removed since the last build goes
        for name in WORKFLOW_PATHS:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORE, dirs_exist_ok=True)
            else:
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithWorkflow})
