"""Snakemake adapter (selection: kfold): every restart of one (setting, K, fold)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.io import log_to_file, read_parquet, write_json
from trainmap.kfold import fit_fold
from trainmap.sequences import feature_columns


def main(sequences: str, output: str, params, log: str) -> None:
    # One thread (the rule's `threads: 1`); parallelism comes from one job per (K, fold).
    log_to_file(log)
    table = read_parquet(sequences)
    result = fit_fold(table, feature_columns(table), params.n_states, params.fold, **params.options)
    write_json(result, output)


main(snakemake.input[0], snakemake.output[0], snakemake.params, snakemake.log[0])
