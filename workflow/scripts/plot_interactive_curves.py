"""Snakemake adapter: every run's curves coloured by state, as an interactive page."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.figures.curves_html import curves_page
from trainmap.figures.html import write_page
from trainmap.io.files import read_json, read_parquet
from trainmap.io.logs import log_to_file


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    text = curves_page(
        read_parquet(inputs.trajectories),
        read_parquet(inputs.states),
        params.features,
        params.convergence,
        read_json(inputs.map)["n_states"],
        params.setting,
    )
    write_page(text, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
