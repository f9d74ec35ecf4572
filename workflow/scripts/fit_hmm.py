"""Snakemake adapter: fit every restart of one (setting, K) and write k<K>.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.fit import fit_state_count
from trainmap.hmm.sequences import feature_columns, observations
from trainmap.io.files import read_parquet, write_json
from trainmap.io.logs import log_to_file


def main(sequences: str, output: str, params, log: str) -> None:
    # BLAS/OpenMP threads: Snakemake sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ... to the
    # rule's `threads: 1`; parallelism comes from one job per K.
    log_to_file(log)
    table = read_parquet(sequences)
    features = feature_columns(table)
    options = params.options
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
        covariance_guard=options["covariance_guard"],
    )
    write_json(result, output)


main(snakemake.input[0], snakemake.output[0], snakemake.params, snakemake.log[0])
