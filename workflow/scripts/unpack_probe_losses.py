"""Snakemake adapter: copy one seed's probe_losses.parquet out of its training job's bundle
(a setting with probe:), checked against the bundle's manifest (trainmap.training.bundle)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.columns import PROBE_FILE
from trainmap.io.logs import log_to_file
from trainmap.training.bundle import unpack_seed


def main(bundle: str, seed: int, output: str, log: str) -> None:
    log_to_file(log)
    unpack_seed(bundle, seed, {PROBE_FILE: output})


main(snakemake.input[0], int(snakemake.wildcards.seed), snakemake.output[0], snakemake.log[0])
