"""Snakemake adapter: convergence times, occupancy and the detour regression of a setting."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import logging

from trainmap.io.atomic import atomic_path
from trainmap.io.files import read_json, read_parquet, write_json, write_parquet
from trainmap.io.logs import log_to_file
from trainmap.maps.no_regression import analyze_runs


def main(inputs, outputs, params, log: str) -> None:
    log_to_file(log)
    n_states = read_json(inputs.selection)["n_states"]
    states, trajectories = read_parquet(inputs.states), read_parquet(inputs.trajectories)
    # no regression for a checkpoint series without evals, nor for one run
    analysis = analyze_runs(states, trajectories, n_states, params.convergence, params.alpha)
    table, summary, runs = analysis
    logging.info("regression: %s", {k: summary[k] for k in ("r2", "f_pvalue", "reason")})
    with atomic_path(outputs.detours) as tmp:
        table.to_csv(tmp, index=False)
    write_json(summary, outputs.regression)
    write_parquet(runs, outputs.runs)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
