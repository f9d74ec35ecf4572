"""Snakemake adapter (selection: kfold): every restart of one (setting, K, fold)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.kfold import fit_fold
from trainmap.hmm.sequences import feature_columns
from trainmap.io.files import read_parquet, write_json
from trainmap.io.logs import log_to_file


def main(sequences: str, output: str, params, log: str) -> None:
    # One thread (the rule's `threads: 1`); parallelism comes from one job per (K, fold).
    log_to_file(log)
    table = read_parquet(sequences)
    result = fit_fold(table, feature_columns(table), params.n_states, params.fold, **params.options)
    write_json(result, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input[0], snakemake.output[0], snakemake.params, snakemake.log[0])
