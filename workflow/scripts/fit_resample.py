"""Snakemake adapter: one resample of a setting's selection and map (stability.resamples).

Writes the resample's fits, its pick of K, every run's states under its model at that K
and its regression's call of each state (trainmap.maps.pipeline.resample_with_calls).
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.files import read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.maps.pipeline import resample_with_calls


def main(inputs, output: str, params, log: str) -> None:
    # One thread (the rule's `threads: 1`); parallelism comes from one job per resample.
    log_to_file(log)
    result = resample_with_calls(
        read_parquet(inputs.sequences),
        read_parquet(inputs.trajectories),
        params.resample,
        params.hmm,
        params.stability,
        convergence=params.convergence,
        alpha=params.alpha,
        where=f"settings.{params.setting}",
    )
    write_json(result, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
