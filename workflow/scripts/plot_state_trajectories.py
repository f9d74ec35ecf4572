"""Snakemake adapter: every run's metrics coloured by decoded state (trajectories.png)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.plots import plot_trajectories
from trainmap.figures.style import save_figure
from trainmap.io.files import read_json, read_parquet
from trainmap.io.logs import log_to_file


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    figure = plot_trajectories(
        read_parquet(inputs.trajectories),
        read_parquet(inputs.states),
        params.features,
        params.convergence,
        read_json(inputs.map),
        params.setting,
    )
    save_figure(figure, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
