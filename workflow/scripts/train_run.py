"""Snakemake adapter: train one (setting, seed) and write its metrics and final weights."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from trainmap.io import log_to_file, write_parquet
from trainmap.tasks import get_task
from trainmap.train import save_weights, train


def main(outputs, params, threads: int, log: str) -> None:
    log_to_file(log)
    torch.set_num_threads(threads)
    task = get_task(params.task)
    table, weights = train(task, task.params(**params.hyper), params.seed)
    table.insert(0, "setting", params.setting)
    table.insert(1, "seed", params.seed)
    save_weights(weights, outputs.model)
    write_parquet(table, outputs.metrics)


main(snakemake.output, snakemake.params, snakemake.threads, snakemake.log[0])
