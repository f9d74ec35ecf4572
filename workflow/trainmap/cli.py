"""The ``trainmap`` console script: ``check``, ``clean-resume``, ``run``, ``predict``, ``watch``.

Each command's module is imported only when it is called: ``pip install trainmap`` (the
Recorder alone) has none of the workflow's libraries, and then the command says which
extra to install instead of failing on an import.
"""

import importlib
import sys

# command -> (module, function); all need the [workflow] extra.
COMMANDS = {
    "check": ("trainmap.config.check", "main"),
    "clean-resume": ("trainmap.config.check", "clean_resume"),
    "run": ("trainmap.run", "main"),
    "predict": ("trainmap.live.predict", "main"),
    "watch": ("trainmap.live.watch", "main"),
}
USAGE = """\
usage: trainmap check CONFIG [CONFIG ...] [--directory DIR]
       trainmap clean-resume CONFIG [--directory DIR] [--dry-run]
       trainmap run [CONFIG] [--profile NAME|DIR] [snakemake arguments ...]
       trainmap predict --map results/<setting> (--runs DIR | --table F) [--out F]
       trainmap watch RUNS_DIR --map results/<setting> [--every S] [--once]"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]]
    try:
        command = getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as error:
        if (error.name or "trainmap").split(".")[0] == "trainmap":
            raise  # a broken install of trainmap itself, not a missing library
        print(
            f"trainmap {argv[0]} needs the workflow, whose {error.name} is not installed: "
            "pip install 'trainmap[workflow]' (README \"Install\")",
            file=sys.stderr,
        )
        return 2
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
