"""Snakemake adapter: one trajectories table per setting, from runs or a user's table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.files import write_parquet
from trainmap.io.logs import log_to_file
from trainmap.io.stale import remove_stale_results
from trainmap.io.tables import build_trajectories


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    remove_stale_results(Path(output).parent)  # a failed rerun leaves no stale results
    table = build_trajectories(params.source, list(inputs), params.features, params.convergence)
    write_parquet(table, output)


main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
