"""Snakemake adapter: Viterbi paths of every run under the selected model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.decode import decode_states
from trainmap.hmm.fit import model_from_json
from trainmap.io.files import read_json, read_parquet, write_parquet
from trainmap.io.logs import log_to_file


def main(inputs, output: str, log: str) -> None:
    log_to_file(log)
    chosen = read_json(inputs.selection)["n_states"]
    (fit,) = [f for f in map(read_json, inputs.fits) if f["n_states"] == chosen]
    table = read_parquet(inputs.sequences)
    states = decode_states(model_from_json(fit), table, fit["features"])
    write_parquet(states, output)


main(snakemake.input, snakemake.output[0], snakemake.log[0])
