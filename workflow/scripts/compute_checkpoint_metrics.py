"""Snakemake adapter: the metrics of one seed's checkpoint series (source: checkpoints),
written like a trained run's: results/<setting>/runs/seed<seed>/metrics.parquet."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from trainmap.checkpoints.read import read_evals, seed_table
from trainmap.checkpoints.stream import series_metrics_fast
from trainmap.io.files import write_parquet
from trainmap.io.logs import log_to_file
from trainmap.io.stale import remove_stale_results
from trainmap.training.common import resolve_device


def main(output: str, params, threads: int, log: str) -> None:
    log_to_file(log)
    remove_stale_results(Path(output).parents[2])  # a failed rerun leaves no stale results
    torch.set_num_threads(threads)
    series, seed = params.series, int(params.seed)
    device = resolve_device(params.hyper["device"])
    metrics = series_metrics_fast(
        series["locations"], series["hub"], series["model"], params.hyper, device, threads,
        series["spectra"],
    )  # fmt: skip
    evals = read_evals(series["evals"], seed) if series["evals"] else None
    write_parquet(seed_table(params.setting, seed, metrics, evals), output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.output[0], snakemake.params, snakemake.threads, snakemake.log[0])
