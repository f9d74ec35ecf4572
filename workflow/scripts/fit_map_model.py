"""Snakemake adapter: the map's model, the selected K refit on all runs (selected.json)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.selected import selected_model
from trainmap.hmm.sequences import feature_columns
from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file


def main(inputs, output: str, params, log: str) -> None:
    # One thread (the rule's `threads: 1`), as the per-K fits.
    log_to_file(log)
    table = read_parquet(inputs.sequences)
    model = selected_model(
        table,
        feature_columns(table),
        read_json(inputs.selection),
        [read_json(path) for path in inputs.fits],
        refit=params.refit,
        options=params.options,
    )
    write_json(model, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
