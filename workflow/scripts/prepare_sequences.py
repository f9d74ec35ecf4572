"""Snakemake adapter: z-scored, split HMM sequences of one setting and a report of them."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.sequences import prepare_sequences
from trainmap.io.files import read_parquet, write_json, write_parquet
from trainmap.io.logs import log_to_file


def main(trajectories: str, outputs, params, log: str) -> None:
    log_to_file(log)
    options = params.options
    prepared = prepare_sequences(
        read_parquet(trajectories),
        params.features,
        max_checkpoints=options["max_checkpoints"],
        normalize=options["normalize"],
        val_fraction=options["val_fraction"],
        seed=options["seed"],
        states=options["states"],
        folds=options.get("folds"),  # only given with selection: kfold
        blocks=options.get("blocks"),  # only given with selection: time
        features_given=params.features_given,
    )
    write_parquet(prepared.table, outputs.sequences)
    write_json({"setting": params.setting, **prepared.report(), "options": options}, outputs.report)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input[0], snakemake.output, snakemake.params, snakemake.log[0])
