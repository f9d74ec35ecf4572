"""``python -m trainmap.training.unpack BUNDLE SEED LOG OUTPUT...``: the unpack rules'
shell command (``UNPACK_SEED`` in workflow/rules/common.smk), ``bundle.unpack_seed`` run by
Snakemake's own interpreter. Standard library only, as bundle.py is.

A module of its own rather than a ``main`` in bundle.py: train_run's code digest covers
bundle.py (it writes the manifest), and a change there retrains every seed.
"""

import sys

from trainmap.training.bundle import BundleError, unpack_seed


def main(argv: list[str]) -> None:
    """``unpack_seed``, with a failure as one line on stderr and exit status 1."""
    bundle, seed, log, *outputs = argv
    try:
        unpack_seed(bundle, int(seed), outputs, log)
    except BundleError as error:
        sys.exit(f"unpack: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])
