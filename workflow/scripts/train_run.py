"""Snakemake adapter: train a group of seeds of one setting (vectorised over a seed
dimension or one after another, as settings.<name>.vectorize says), and write
each seed's metrics and final weights to <bundle>/seed<seed>/ (rule unpack_run copies them
to results/<setting>/runs/seed<seed>/).

Resumable (trainmap.training.resume): the seeds' states live beside the bundle, in
<runs>/.resume-seed<seed>/, which Snakemake's cleanup of an incomplete bundle leaves alone;
a rerun resumes a killed seed and copies finished ones instead of retraining them.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake: the package is beside scripts/
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import logging

import torch

from trainmap.io.logs import log_to_file
from trainmap.io.stale import remove_stale_results
from trainmap.tasks.registry import get_task
from trainmap.training.bundle import write_manifest
from trainmap.training.choose import train_group
from trainmap.training.probe import PROBE_KEY, draw_probe, probe_table
from trainmap.training.resume import ResumeStore, fingerprint


def main(bundle: str, params, inputs: dict[str, str], threads: int, log: str) -> None:
    """inputs: files other rules made for this task, by hyperparameter name (a masked
    LM's tokenizer); each replaces that hyperparameter's value."""
    log_to_file(log)
    remove_stale_results(Path(bundle).parents[1])  # a failed rerun leaves no stale results
    torch.set_num_threads(threads)
    task = get_task(params.task)
    hyper = task.params(**{**params.hyper, **inputs})
    probe_options = {"probe": params.probe} if params.probe else {}  # no key without one
    run = fingerprint(setting=params.setting, task=params.task, hyper=params.hyper,
                      inputs=inputs, code=params.code, **probe_options)  # fmt: skip
    store = ResumeStore(Path(bundle).parent, run, params.resume_every)
    seeds = list(params.seeds)
    todo = [seed for seed in seeds if not store.is_finished(seed)]
    for seed in sorted(set(seeds) - set(todo)):
        logging.info("seed %d finished in an earlier attempt of this job: not retrained", seed)
    probe = None
    if params.probe and todo:
        probe = draw_probe(task, hyper, params.probe, f"settings.{params.setting}.probe")
    for seed, table, weights in train_group(task, hyper, todo, params.vectorize, store, probe):
        losses = table.pop(PROBE_KEY) if PROBE_KEY in table else None
        table.insert(0, "setting", params.setting)
        table.insert(1, "seed", seed)
        if losses is not None:
            losses = probe_table(losses, table["step"], params.setting, seed)
        store.save_finished(seed, table, weights, losses)
    for seed in seeds:
        store.export(seed, Path(bundle) / f"seed{seed}")
    write_manifest(bundle, seeds)
    store.clear(seeds)  # the bundle is complete: the states have served


if "snakemake" in globals():  # run by Snakemake; tests import main and call it
    main(
        snakemake.output[0],
        snakemake.params,
        dict(snakemake.input.items()),
        snakemake.threads,
        snakemake.log[0],
    )
