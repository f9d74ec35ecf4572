"""One training loop for every task, with the weight metrics logged at each checkpoint.

A run's state lives in ``RunState`` (model, optimizer, step counters, the data-order
generator, the position in the epoch's data order and the rows logged so far), so that
``trainmap.resume`` can save and restore it whole; every random draw comes from a
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

from trainmap.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.hyperparameters import TrainingParams
from trainmap.io import atomic_path
from trainmap.metrics import compute_metrics
from trainmap.resume import ResumeStore, SeedResume
from trainmap.seeding import derive_seed
from trainmap.tasks import Splits, Task
from trainmap.training.probe import PROBE_KEY, with_probe_losses

log = logging.getLogger(__name__)

EVAL_CHUNK = 8192  # rows per forward pass when evaluating a whole split


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


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by ``derive_seed(*parts)``: one per random stream of a run."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is one; the training code path is the same."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def make_optimizer(
    p: TrainingParams, model: nn.Module | list[torch.Tensor]
) -> torch.optim.Optimizer:
    """The setting's optimizer over a model's parameters, or over a list of tensors (a
    vectorised group's stacked parameters or per-seed views of them, trainmap.seed_group)."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else model
    factories = {
        "adamw": lambda: torch.optim.AdamW(
            params,
            lr=p.lr,
            weight_decay=p.weight_decay,
            betas=p.betas,
            fused=True,  # one kernel for all parameters, on the CPU and CUDA alike
        ),
        "sgd": lambda: torch.optim.SGD(
            params, lr=p.lr, weight_decay=p.weight_decay, momentum=p.momentum
        ),
    }
    return factories[p.optimizer]()


def init_run(task: Task, p: TrainingParams, seed: int, device: torch.device):
    """Data and a fresh run state for ``seed``: init, data and order streams are separate."""
    data = task.make_data(p, generator("data", seed)).to(device)
    model = task.make_model(p)
    model.reset_parameters(generator("init", seed))
    model.to(device)
    optimizer = make_optimizer(p, model)
    state = RunState(model, optimizer, generator("order", seed), generator("batch", seed))
    return data, state


def eval_chunk(p: TrainingParams) -> int:
    """Examples per forward pass when scoring a split: a task's ``eval_batch_size`` key
    where it has one (models whose activations are large), else EVAL_CHUNK."""
    return getattr(p, "eval_batch_size", EVAL_CHUNK)


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


class Progress:
    """Log lines a person following a run's log file can read: where it is, how long left."""

    def __init__(self, seed: int, total_steps: int):
        self.seed = seed
        self.total = total_steps
        self.start = time.perf_counter()

    def report(self, row: dict[str, Any], epochs: int) -> None:
        elapsed = time.perf_counter() - self.start
        done = row["step"] / self.total if self.total else 1.0
        eta = f"~{elapsed * (1 - done) / done:.1f}s" if done > 0 else "?"
        log.info(
            "seed %d epoch %d/%d step %d/%d | train loss %.4g acc %.3f | eval loss %.4g acc %.3f"
            " | %.1fs elapsed, %s left",
            self.seed,
            row["epoch"],
            epochs,
            row["step"],
            self.total,
            row["train_loss"],
            row["train_accuracy"],
            row["eval_loss"],
            row["eval_accuracy"],
            elapsed,
            eta,
        )


def is_checkpoint(p: TrainingParams, state: RunState, end_of_epoch: bool) -> bool:
    if p.eval_unit == "step":
        return state.step % p.eval_every == 0
    return end_of_epoch and state.epoch % p.eval_every == 0


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
            idx = state.order[start : start + p.batch_size]
            x, y = data.train_x[idx], data.train_y[idx]
            if task.train_batch is not None:
                x, y = task.train_batch(p, x, y, state.batch_gen)
            loss = task.loss(state.model(x), y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
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


def train_group(
    task: Task,
    p: TrainingParams,
    seeds: list[int],
    vectorize: str = "auto",
    store: ResumeStore | None = None,
    probe: Callable | None = None,
):
    """Train the seeds of one job; yield ``(seed, table, weights)`` per seed, in order.

    vectorize: ``true`` trains them at once over a seed dimension
    (``trainmap.vectorized``, the same results bit for bit), ``false`` one after another,
    ``auto`` vectorised where the model has a stacked form that was measured to pay on
    this device (``trainmap.vectorized.should_vectorize``).
    store: where the job's resumable states live (``trainmap.resume``: a group's state, or
    each seed's); None: not resumable. probe: see ``train``.
    """
    from trainmap.vectorized import should_vectorize, train_vectorized  # imports this module

    if not seeds:  # every seed finished in an earlier attempt of the job
        return
    if should_vectorize(task, p, seeds, vectorize):
        if store is None:
            yield from train_vectorized(task, p, seeds, probe=probe)
            return
        # An earlier attempt trained one after another (another vectorize, or auto on
        # another device) and left per-seed states: resume those rather than lose them.
        if not any(store.has_seed_state(seed) for seed in seeds):
            resume = store.group_resumer(seeds)
            yield from train_vectorized(task, p, seeds, resume=resume, probe=probe)
            return
        log.info("seeds %s have per-seed resumable states: resumed one after another", seeds)
    yield from train_one_by_one(task, p, seeds, store.resumer if store else None, probe)


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
