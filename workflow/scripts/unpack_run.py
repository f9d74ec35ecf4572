"""Snakemake adapter: copy one seed's files out of its training job's bundle, after
checking the bundle's manifest (a half-finished job's bundle is refused,
trainmap.training.bundle)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.logs import log_to_file
from trainmap.training.bundle import unpack_seed


def main(bundle: str, seed: int, outputs, log: str) -> None:
    log_to_file(log)
    unpack_seed(bundle, seed, {"metrics.parquet": outputs.metrics,
                               "model.safetensors": outputs.model})  # fmt: skip


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input[0], int(snakemake.wildcards.seed), snakemake.output, snakemake.log[0])
