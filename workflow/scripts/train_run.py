"""Snakemake adapter: train a group of seeds of one setting (vectorised over a seed
dimension or one after another, as settings.<name>.vectorize says), and write
each seed's metrics and final weights to <bundle>/seed<seed>/ (rule unpack_run copies them
to results/<setting>/runs/seed<seed>/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from trainmap.io import log_to_file, write_parquet
from trainmap.tasks import get_task
from trainmap.train import save_weights, train_group


def main(bundle: str, params, threads: int, log: str) -> None:
    log_to_file(log)
    torch.set_num_threads(threads)
    task = get_task(params.task)
    hyper = task.params(**params.hyper)
    for seed, table, weights in train_group(task, hyper, params.seeds, params.vectorize):
        table.insert(0, "setting", params.setting)
        table.insert(1, "seed", seed)
        run_dir = Path(bundle) / f"seed{seed}"
        save_weights(weights, run_dir / "model.safetensors")
        write_parquet(table, run_dir / "metrics.parquet")


main(snakemake.output[0], snakemake.params, snakemake.threads, snakemake.log[0])
