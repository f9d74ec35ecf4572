"""What the per-seed loop and the vectorised loop share: generators, device, optimizer,
evaluation chunking, checkpoint timing and progress lines.

Neither loop imports the other; both import this module (``trainmap.training.choose``
picks one of them for a job).
"""

import logging
import time
from typing import Any, Protocol

import torch
from torch import nn

from trainmap.seeding import derive_seed
from trainmap.tasks.params import TrainingParams

log = logging.getLogger(__name__)

EVAL_CHUNK = 8192  # rows per forward pass when evaluating a whole split


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
    vectorised group's stacked parameters or per-seed views of them,
    trainmap.training.seed_group)."""
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


def eval_chunk(p: TrainingParams) -> int:
    """Examples per forward pass when scoring a split: a task's ``eval_batch_size`` key
    where it has one (models whose activations are large), else EVAL_CHUNK."""
    return getattr(p, "eval_batch_size", EVAL_CHUNK)


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


class Counters(Protocol):
    """Where a run or a group is: ``RunState`` and ``GroupState`` both count so."""

    step: int
    epoch: int


def is_checkpoint(p: TrainingParams, state: Counters, end_of_epoch: bool) -> bool:
    if p.eval_unit == "step":
        return state.step % p.eval_every == 0
    return end_of_epoch and state.epoch % p.eval_every == 0
