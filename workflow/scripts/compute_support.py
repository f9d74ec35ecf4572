"""Snakemake adapter: the kept map's support values against every resample (support.json)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file
from trainmap.maps.detours import read_detour_table
from trainmap.maps.support import map_support


def main(inputs, output: str, log: str) -> None:
    log_to_file(log)
    n_states = read_json(inputs.selection)["n_states"]
    kinds = read_detour_table(inputs.detours).sort_values("state")["kind"].tolist()
    refits = [read_json(path) for path in inputs.resamples]
    support = map_support(read_parquet(inputs.states), kinds, n_states, refits)
    write_json(support, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.log[0])
