"""Snakemake adapter: Viterbi paths of every run under the map's model (selected.json)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import model_from_json
from trainmap.io.files import read_json, read_parquet, write_parquet
from trainmap.io.logs import log_to_file


def main(inputs, output: str, log: str) -> None:
    log_to_file(log)
    model = read_json(inputs.model)
    table = read_parquet(inputs.sequences)
    write_parquet(decode_states(model_from_json(model), table, model["features"]), output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.log[0])
