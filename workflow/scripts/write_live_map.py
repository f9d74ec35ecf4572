"""Snakemake adapter: live.json, what the map needs to place a run online (docs/live.md)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import pandas as pd

from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.live.build import live_map


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    runs = read_parquet(inputs.runs) if params.convergence else pd.DataFrame()
    data = live_map(
        params.setting,
        read_json(inputs.model),
        read_json(inputs.prepare),
        read_json(inputs.map),
        read_parquet(inputs.states),
        runs,
        params.convergence,
    )
    write_json(data, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
