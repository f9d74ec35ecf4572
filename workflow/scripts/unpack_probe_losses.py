"""Snakemake adapter: copy one seed's probe_losses.parquet out of its training job's bundle
(a setting with probe:), checked against the bundle's manifest (trainmap.training.bundle)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.columns import PROBE_FILE
from trainmap.io.logs import log_to_file
from trainmap.training.bundle import unpack_seed


def main(bundle: str, seed: int, output: str, log: str) -> None:
    log_to_file(log)
    unpack_seed(bundle, seed, {PROBE_FILE: output})


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input[0], int(snakemake.wildcards.seed), snakemake.output[0], snakemake.log[0])
