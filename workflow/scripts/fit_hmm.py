"""Snakemake adapter: fit every restart of one (setting, K) and write k<K>.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import pandas as pd
from threadpoolctl import threadpool_limits

from trainmap.hmm import fit_state_count
from trainmap.io import log_to_file, write_json
from trainmap.sequences import feature_columns, observations


def main(sequences: str, output: str, params, threads: int, log: str) -> None:
    log_to_file(log)
    table = pd.read_parquet(sequences)
    features = feature_columns(table)
    options = params.options
    # One BLAS/OpenMP thread per job (threads: 1): parallelism comes from jobs over K.
    with threadpool_limits(limits=threads):
        result = fit_state_count(
            observations(table, features, "fit"),
            observations(table, features, "val"),
            params.n_states,
            features,
            restarts=options["restarts"],
            n_iter=options["n_iter"],
            covariance=options["covariance"],
            seed=options["seed"],
            tol=options["tol"],
            min_covar=options["min_covar"],
        )
    write_json(result, output)


main(snakemake.input[0], snakemake.output[0], snakemake.params, snakemake.threads, snakemake.log[0])
