"""Snakemake adapter: one trajectories table per setting, from runs or a user's table."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.function_space.features import join_coords, pc_features
from trainmap.io.files import read_parquet, write_parquet
from trainmap.io.logs import log_to_file
from trainmap.io.stale import remove_stale_results
from trainmap.io.tables import build_trajectories


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    remove_stale_results(Path(output).parent)  # a failed rerun leaves no stale results
    features = params.features
    if inputs.coords:  # pc1, pc2, ...: function-space components (rule fit_function_space)
        features = [f for f in features if f not in pc_features(features)]
    table = build_trajectories(params.source, list(inputs.metrics), features, params.convergence)
    if inputs.coords:
        table = join_coords(table, read_parquet(inputs.coords), params.features)
    write_parquet(table, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
