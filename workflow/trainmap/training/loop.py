"""One training loop for every task, with the weight metrics logged at each checkpoint.

A run's state lives in ``RunState`` (model, optimizer, step counters, the data-order
generator, the position in the epoch's data order and the rows logged so far), so that
``trainmap.training.resume`` can save and restore it whole; every random draw comes from a
generator derived from the run's seed (``trainmap.seeding``).
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn

from trainmap.io.atomic import atomic_path
from trainmap.io.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.metrics.weights import compute_metrics
from trainmap.tasks.base import Splits, Task
from trainmap.tasks.params import TrainingParams
from trainmap.training.common import (
    EVAL_CHUNK,
    Progress,
    eval_chunk,
    generator,
    is_checkpoint,
    make_optimizer,
    resolve_device,
)
from trainmap.training.probe import PROBE_KEY, with_probe_losses
from trainmap.training.resume import SeedResume

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Everything that changes while a run trains."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    order_gen: torch.Generator  # draws each epoch's permutation of the training data
    batch_gen: torch.Generator  # draws a task's per-batch randomness (augmentation, masking)
    epoch: int = 0
    step: int = 0
    diverged: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    # The current epoch's permutation of the training data (None between epochs) and the
    # index of the next batch's first example in it: where a resumed run continues.
    order: torch.Tensor | None = None
    position: int = 0
    # Function space (trainmap.training.probe): scores the probe set at each checkpoint.
    probe: Callable | None = None


def init_run(task: Task, p: TrainingParams, seed: int, device: torch.device):
    """Data and a fresh run state for ``seed``: init, data and order streams are separate."""
    data = task.make_data(p, generator("data", seed)).to(device)
    model = task.make_model(p)
    model.reset_parameters(generator("init", seed))
    model.to(device)
    optimizer = make_optimizer(p, model)
    state = RunState(model, optimizer, generator("order", seed), generator("batch", seed))
    return data, state


@torch.no_grad()
def evaluate(
    task: Task, model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK
):
    """Mean loss and accuracy over a whole split, as 0-d tensors (no host sync here).

    Each chunk's mean is weighted by its number of scored items (``task.count``; default
    the chunk's length), so the result is the split's mean whatever the chunk size.
    """
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    total = 0
    for start in range(0, len(x), chunk):
        out = model(x[start : start + chunk])
        target = y[start : start + chunk]
        n = len(target) if task.count is None else task.count(target)
        loss += task.loss(out, target) * n
        correct += task.accuracy(out, target) * n
        total += n
    model.train()
    return loss / total, correct / total


def checkpoint(task: Task, data: Splits, state: RunState, chunk: int = EVAL_CHUNK):
    """One row: step, epoch, losses, accuracies and the 14 weight metrics.

    The train loss and accuracy are scored on ``data.train_probe()`` (a task's fixed
    subset of the training split, or all of it).
    """
    train_loss, train_acc = evaluate(task, state.model, *data.train_probe(), chunk)
    eval_loss, eval_acc = evaluate(task, state.model, data.eval_x, data.eval_y, chunk)
    scores = torch.stack([train_loss, eval_loss, train_acc, eval_acc]).tolist()
    row = {"step": state.step, "epoch": state.epoch}
    row.update(zip(RUN_COLUMNS[1:], scores, strict=True))
    row.update(compute_metrics(state.model.weight_groups()))
    if state.probe is not None:
        row[PROBE_KEY] = state.probe(task, state.model, chunk)
    if not all(math.isfinite(row[c]) for c in ("train_loss", "eval_loss")):
        state.diverged = True
    state.rows.append(row)
    return row


def train(
    task: Task,
    p: TrainingParams,
    seed: int,
    resume: SeedResume | None = None,
    probe: Callable | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Train one seed; return its checkpoint table and its final ``state_dict``.

    Checkpoints: at step 0, every ``eval_every`` epochs or steps, and after the last step.
    A run whose loss turns non-finite is marked ``diverged`` and stops at that checkpoint.
    resume: where the run's resumable state lives; the run continues from a saved state
    and offers its state for saving at every checkpoint but the last.
    probe: the setting's probe set (``trainmap.training.probe``), or None.
    """
    device = resolve_device(p.device)
    data, state = init_run(task, p, seed, device)
    state.probe = probe
    n_train = len(data.train_x)
    steps_per_epoch = math.ceil(n_train / p.batch_size)
    progress = Progress(seed, steps_per_epoch * p.epochs)
    log.info("seed %d on %s: %d train / %d eval examples", seed, device, n_train, len(data.eval_x))
    chunk = eval_chunk(p)
    if resume is None or not resume.restore(state):
        progress.report(checkpoint(task, data, state, chunk), p.epochs)
    while state.epoch < p.epochs and not state.diverged:
        if state.order is None:
            state.order = torch.randperm(n_train, generator=state.order_gen).to(device)
        for start in range(state.position, n_train, p.batch_size):
            _optimizer_step(task, p, data, state, state.order[start : start + p.batch_size])
            state.step += 1
            state.position = start + p.batch_size
            end_of_epoch = state.position >= n_train
            if end_of_epoch:
                state.epoch += 1
                state.order, state.position = None, 0
            last = end_of_epoch and state.epoch == p.epochs
            if last or is_checkpoint(p, state, end_of_epoch):
                progress.report(checkpoint(task, data, state, chunk), p.epochs)
                if state.diverged:
                    log.warning("seed %d diverged at step %d: non-finite loss", seed, state.step)
                    break
                if resume is not None and not last:
                    resume.at_checkpoint(state)
    return _run_outputs(state)


def _optimizer_step(task: Task, p: TrainingParams, data, state: RunState, idx) -> None:
    """One optimizer step on the training examples ``idx`` (a batch of the epoch's order)."""
    x, y = data.train_x[idx], data.train_y[idx]
    if task.train_batch is not None:
        x, y = task.train_batch(p, x, y, state.batch_gen)
    loss = task.loss(state.model(x), y)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()


def _run_outputs(state: RunState) -> tuple[pd.DataFrame, dict]:
    """The finished run's checkpoint table and its final weights (CPU copies)."""
    table = pd.DataFrame(state.rows, columns=["step", *RUN_COLUMNS, *METRIC_COLUMNS])
    table["diverged"] = state.diverged
    table = with_probe_losses(table, state.rows)
    # Copies: tied parameters (BERT's decoder and word embeddings) must not share memory
    # in a safetensors file.
    weights = {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in state.model.state_dict().items()
    }
    return table, weights


def train_one_by_one(
    task: Task,
    p: TrainingParams,
    seeds: list[int],
    resumer: Callable[[int], SeedResume] | None = None,
    probe: Callable | None = None,
):
    """The seeds one after another; between runs the log says how far the job is and how
    long it has left (each run's own lines only know about that run). resumer: seed -> its
    resumable state (``train``)."""
    start = time.perf_counter()
    for done, seed in enumerate(seeds, start=1):
        log.info("run %d of %d in this job: seed %d", done, len(seeds), seed)
        yield seed, *train(task, p, seed, resumer(seed) if resumer else None, probe)
        elapsed = time.perf_counter() - start
        left = elapsed / done * (len(seeds) - done)
        log.info("%d of %d runs done in %.1fs, ~%.1fs left", done, len(seeds), elapsed, left)


def save_weights(weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """Final weights as safetensors, keys = the module's ``state_dict()`` names."""
    with atomic_path(path) as tmp:
        save_file(weights, str(tmp))
