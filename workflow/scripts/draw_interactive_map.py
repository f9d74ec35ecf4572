"""Snakemake adapter: the training map as a self-contained interactive page (map.html)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import numpy as np

from trainmap.figures.html import write_page
from trainmap.figures.map_html import map_page
from trainmap.io.files import read_json, read_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table


def main(inputs, output: str, params, log: str) -> None:
    log_to_file(log)
    training_map = read_json(inputs.map)
    model = read_json(inputs.model)
    if model["features"] != training_map["features"]:
        raise ValueError(f"{inputs.model}: features differ from {inputs.map}'s")
    text = map_page(
        training_map,
        read_detour_table(inputs.detours),
        read_parquet(inputs.states),
        read_parquet(inputs.runs).set_index("seed"),
        np.asarray(model["means"], dtype=float),
        params.setting,
    )
    write_page(text, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
