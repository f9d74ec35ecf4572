"""Snakemake adapter: fit every restart of one (setting, K) and write k<K>.json.

With ``selection: kfold`` the model is refit on all runs and carries the (K, fold) fits'
cross-validated scores (trainmap.hmm.kfold); with ``time`` the job fits every fold of
blocks of checkpoints itself, then the model on every checkpoint
(trainmap.hmm.time_selection)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from trainmap.hmm.fit import fit_state_count
from trainmap.hmm.kfold import refit_all_runs
from trainmap.hmm.sequences import feature_columns, observations
from trainmap.hmm.time_selection import fit_over_time
from trainmap.io.files import read_json, read_parquet, write_json
from trainmap.io.logs import log_to_file


def main(inputs, output: str, params, log: str) -> None:
    # BLAS/OpenMP threads: Snakemake sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ... to the
    # rule's `threads: 1`; parallelism comes from one job per K.
    log_to_file(log)
    table = read_parquet(inputs.sequences)
    features = feature_columns(table)
    options = params.options
    if params.selection == "kfold":
        folds = [read_json(path) for path in inputs.folds]
        write_json(refit_all_runs(table, features, params.n_states, folds, **options), output)
        return
    if params.selection == "time":
        write_json(fit_over_time(table, features, params.n_states, **options), output)
        return
    result = fit_state_count(
        observations(table, features, "fit"),
        observations(table, features, "val"),
        params.n_states,
        features,
        **options,
    )
    write_json(result, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output[0], snakemake.params, snakemake.log[0])
