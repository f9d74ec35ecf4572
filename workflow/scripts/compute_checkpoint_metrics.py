"""Snakemake adapter: the metrics of one seed's checkpoint series (source: checkpoints),
written like a trained run's: results/<setting>/runs/seed<seed>/metrics.parquet, and the
tensors they read beside it (weights.json)."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from trainmap.checkpoints.read import read_evals, seed_table
from trainmap.checkpoints.stream import series_metrics
from trainmap.io.files import write_json, write_parquet
from trainmap.io.logs import log_to_file
from trainmap.io.stale import remove_stale_results
from trainmap.training.common import resolve_device


def main(outputs, params, threads: int, log: str) -> None:
    output, weights = outputs
    log_to_file(log)
    remove_stale_results(Path(output).parents[2])  # a failed rerun leaves no stale results
    torch.set_num_threads(threads)
    series, seed = params.series, int(params.seed)
    device = resolve_device(params.hyper["device"])
    metrics, record = series_metrics(
        series["locations"], series["hub"], series["model"], params.hyper, device, threads,
        series["spectra"], series["patterns"],
    )  # fmt: skip
    evals = read_evals(series["evals"], seed) if series["evals"] else None
    table = seed_table(params.setting, seed, metrics, evals, record.get("bias_free", False))
    write_json(record, weights)
    write_parquet(table, output)


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(snakemake.output, snakemake.params, snakemake.threads, snakemake.log[0])
