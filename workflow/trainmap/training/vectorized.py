"""Seed-parallel training: a job's seeds trained at once over a leading seed dimension.

The same run, seed for seed, as ``trainmap.training.loop.train`` (bit for bit on a CPU): each seed
keeps its own init, data, data order and generators; the parameters of all seeds are
stacked into one tensor per parameter name (S, ...) (``trainmap.training.seed_group``), the forward
pass is the model's ``stacked_forward`` over ``trainmap.seedops`` kernels checked to round
as the per-seed ones do, one backward pass gives every seed its own gradient, and one
optimizer call updates every seed (over the stacked tensors, or over per-seed views where
stacking would round differently). Each seed also keeps a plain module of its own
(``GroupState.models``) whose parameters are views of its slices: its ``weight_groups()``
and ``state_dict()`` work as in the loop.

A model is stackable when it has ``stacked_forward(params, x, kernels)`` (the MLP of
sparse parity and of any other task built on ``trainmap.tasks.mlp.MLP``, and the one-layer
transformer); ``stack_pays_on`` names the devices where batching was measured to pay.
"""

import ctypes
import functools
import logging
import math
from collections.abc import Iterator

import pandas as pd
import torch
from torch import nn

from trainmap.io.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.metrics.weights import compute_metrics_stacked
from trainmap.seedops import SeedKernels, random_like, signature
from trainmap.tasks.base import Task
from trainmap.tasks.params import TrainingParams
from trainmap.training.common import Progress, eval_chunk, is_checkpoint, resolve_device
from trainmap.training.probe import PROBE_KEY, with_probe_losses
from trainmap.training.resume import GroupResume
from trainmap.training.seed_group import GroupState, StackedSplits, batch_of, init_group

log = logging.getLogger(__name__)


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed buffers instead of returning them to the OS.

    A group's activations are tens of MB per op (40 seeds x 1000 rows x 128 floats); by
    default glibc maps each such buffer fresh and unmaps it on free, so every op pays the
    page faults of touching new memory again (half of a parity checkpoint's time here).
    Raising the mmap and trim thresholds keeps them in the heap. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's maximum on 64-bit
    libc.mallopt(m_trim_threshold, 2**30)


def available_bytes(device: torch.device) -> int:
    """Free memory where the group trains: CUDA's free memory, else MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**62  # unknown: do not refuse


def activation_bytes(task: Task, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes autograd keeps for one seed's forward on ``x`` (the saved tensors and the loss)."""
    total = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        out = model(x)
        task.loss(out, y)
    return total + out.nbytes


def estimate_bytes(task: Task, p: TrainingParams, data: StackedSplits, state: GroupState) -> int:
    """Memory the group needs: parameters, gradients and optimizer state, the data, and
    the activations of the largest batch (a training batch or an evaluation chunk), x S."""
    n_seeds = len(state.seeds)
    param_bytes = sum(v.nbytes for v in state.params.values())
    per_param = 3 if p.optimizer == "adamw" else 2 + (p.momentum > 0)  # + grads and states
    model = state.models[0]
    rows = min(max(p.batch_size, eval_chunk(p)), data.train_x.shape[1])
    act = activation_bytes(task, model, data.train_x[0, :rows], data.train_y[0, :rows])
    return param_bytes * per_param + data.nbytes() + act * n_seeds


def check_memory(task: Task, p: TrainingParams, data: StackedSplits, state: GroupState):
    """Refuse a group that cannot fit, before training, naming seeds_per_job."""
    device = next(iter(state.params.values())).device
    need, free = estimate_bytes(task, p, data, state), available_bytes(device)
    if need > free:
        raise MemoryError(
            f"a vectorised group of {len(state.seeds)} seeds needs ~{need / 2**30:.2f} GiB on "
            f"{device} but {free / 2**30:.2f} GiB is free: lower seeds_per_job (about "
            f"{need / len(state.seeds) / 2**30:.3f} GiB a seed) or set vectorize: false"
        )
    log.info(
        "group of %d seeds: ~%.3f GiB estimated, %.1f GiB free",
        len(state.seeds),
        need / 2**30,
        free / 2**30,
    )


@torch.no_grad()
def evaluate_stacked(
    task: Task,
    model: nn.Module,
    params: dict[str, torch.Tensor],
    kernels: SeedKernels,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk: int,
):
    """Per-seed mean loss and accuracy over a split, (S,) each, as ``train.evaluate``.

    The forward pass is batched over seeds, chunk by chunk (``chunk`` rows) as in the
    loop; each chunk's loss and accuracy are the task's own functions, vmapped over the
    seeds where that was checked to give each seed's values bit for bit (else seed by
    seed), weighted by the chunk's scored items (``task.count`` per seed, else its rows)
    and accumulated in the loop's order.
    """
    n_seeds, n = x.shape[0], x.shape[1]
    loss = torch.zeros(n_seeds, device=x.device)
    correct = torch.zeros(n_seeds, device=x.device)
    total: int | torch.Tensor = 0
    for start in range(0, n, chunk):
        out = model.stacked_forward(params, x[:, start : start + chunk], kernels)
        target = y[:, start : start + chunk]
        if task.count is None:
            weight: int | torch.Tensor = target.shape[1]
        else:  # the loop's count per seed (an int or a 0-d tensor), elementwise alike
            weight = torch.stack([torch.as_tensor(task.count(t)) for t in target.unbind()])
            weight = weight.to(x.device)
        loss += (
            per_seed_score(kernels, "eval loss", task.loss, out, target, task.stacked_loss) * weight
        )
        correct += per_seed_score(kernels, "accuracy", task.accuracy, out, target) * weight
        total = total + weight
    return loss / total, correct / total


def per_seed_score(kernels: SeedKernels, name: str, fn, out, target, stacked_fn=None):
    """(S,) values of ``fn(out[s], target[s])``: batched (``stacked_fn``, else vmap) where
    that was checked to be bit-identical, else seed by seed.

    The check runs on 64 rows of random outputs (with the seeds' targets, cycled): S
    real values can agree by chance, and a group may hold only 2 seeds.
    """

    def forms(out: torch.Tensor, target: torch.Tensor):
        def reference():
            return torch.stack(
                [fn(o, t) for o, t in zip(out.unbind(), target.unbind(), strict=True)]
            )

        candidates = [("vmap", lambda: torch.func.vmap(fn)(out, target))]
        if stacked_fn is not None:
            candidates.insert(0, ("stacked", lambda: stacked_fn(out, target)))
        return reference, candidates

    key = (name, *signature(out, target))
    if key not in kernels.choices:
        gen = torch.Generator().manual_seed(0)
        rows = torch.arange(64, device=target.device) % target.shape[0]
        probe = torch.stack([random_like(out[0], gen) for _ in range(64)])
        kernels.pick(key, *forms(probe, target[rows]))
    return kernels.pick(key, *forms(out, target))


def checkpoint_group(task: Task, data: StackedSplits, state: GroupState, kernels) -> list[int]:
    """One row per training seed; returns the positions of seeds whose loss is non-finite."""
    model, params, chunk = state.models[0], state.params, eval_chunk(state.p)
    # the train loss and accuracy on the task's train probe, as the loop's checkpoint
    train_x, train_y = data.train_probe()
    train_loss, train_acc = evaluate_stacked(task, model, params, kernels, train_x, train_y, chunk)
    eval_loss, eval_acc = evaluate_stacked(
        task, model, params, kernels, data.eval_x, data.eval_y, chunk
    )
    scores = torch.stack([train_loss, eval_loss, train_acc, eval_acc], dim=1).tolist()
    metrics = compute_metrics_stacked([m.weight_groups() for m in state.models])
    diverged = []
    for i, seed in enumerate(state.seeds):
        row = {"step": state.step, "epoch": state.epoch}
        row.update(zip(RUN_COLUMNS[1:], scores[i], strict=True))
        row.update(metrics[i])
        if state.probe is not None:
            row[PROBE_KEY] = state.probe(task, state.models[i], chunk)
        state.rows[seed].append(row)
        if not all(math.isfinite(row[c]) for c in ("train_loss", "eval_loss")):
            diverged.append(i)
    return diverged


class GroupProgress:
    """The loop's log lines (``trainmap.training.common.Progress``), one per training seed at every
    checkpoint: a person following the log reads a vectorised job as the loop's."""

    def __init__(self, seeds: list[int], total_steps: int):
        self.per_seed = {seed: Progress(seed, total_steps) for seed in seeds}

    def report(self, state: GroupState, epochs: int) -> None:
        for seed in state.seeds:
            self.per_seed[seed].report(state.rows[seed][-1], epochs)


def checkpoint_and_drop(task: Task, data: StackedSplits, state: GroupState, kernels, report):
    """A checkpoint, reported (``report(state)``); seeds with a non-finite loss stop there
    (rows and weights kept), the others go on from the next batch of the same epoch.
    Returns the remaining seeds' data."""
    diverged = checkpoint_group(task, data, state, kernels)
    report(state)
    if not diverged:
        return data
    for i in diverged:
        log.warning("seed %d diverged at step %d: non-finite loss", state.seeds[i], state.step)
    keep = [i for i in range(len(state.seeds)) if i not in diverged]
    state.drop(diverged)
    return data.keep(torch.tensor(keep, device=data.train_x.device))


def train_steps(
    task: Task,
    p: TrainingParams,
    data: StackedSplits,
    state: GroupState,
    kernels: SeedKernels,
    progress: GroupProgress,
    resume: GroupResume | None = None,
) -> StackedSplits:
    """Train the group to the end (or until every seed diverged); returns the data of the
    seeds still training (diverged seeds leave the stacks). resume: offered the group's
    state at every checkpoint but the last (it saves now and then)."""
    n_train = data.train_x.shape[1]
    model = state.models[0]
    report = functools.partial(progress.report, epochs=p.epochs)
    # (S, B, ...) -> (S,): each seed's mean loss, with each seed's gradient.
    seed_losses = task.stacked_loss or torch.func.vmap(task.loss)
    while state.epoch < p.epochs and state.seeds:
        if state.position == 0:  # each seed's permutation, drawn as the loop draws it
            orders = [torch.randperm(n_train, generator=g) for g in state.order_gens]
            state.orders = torch.stack(orders).to(data.train_x.device)
        for start in range(state.position, n_train, p.batch_size):
            x, y = batch_of(data, state.orders[:, start : start + p.batch_size])
            loss = seed_losses(model.stacked_forward(state.params, x, kernels), y).sum()
            state.zero_grad()
            loss.backward()  # d(sum)/d(loss_s) = 1: each seed gets its own gradient
            state.step_optimizer()
            state.step += 1
            end_of_epoch = start + p.batch_size >= n_train
            state.position = 0 if end_of_epoch else start + p.batch_size
            if end_of_epoch:
                state.epoch += 1
            last = end_of_epoch and state.epoch == p.epochs
            if last or is_checkpoint(p, state, end_of_epoch):
                data = checkpoint_and_drop(task, data, state, kernels, report)
                if not state.seeds:
                    break
                if resume is not None and not last:
                    resume.at_checkpoint(state)
    return data


def restore_group(task: Task, p: TrainingParams, seeds: list[int], saved: dict, device):
    """A group rebuilt from ``GroupState.state_dict()``: the data re-derived from the seeds,
    seeds that had stopped (diverged) left out of the stacks."""
    data, state = init_group(task, p, seeds, device)
    state.load_state_dict(saved)
    keep = torch.tensor([seeds.index(seed) for seed in state.seeds], device=device)
    return data.keep(keep), state


def start_group(task: Task, p: TrainingParams, seeds: list[int], saved: dict | None, device):
    """The group's data, its state and whether that was restored from ``saved``.

    A saved state this build cannot restore (e.g. another optimizer form) is logged and
    the group starts afresh: the same results, more time."""
    if saved is not None:
        try:
            return (*restore_group(task, p, seeds, saved, device), True)
        except (ValueError, KeyError, RuntimeError) as error:
            log.warning("cannot restore the saved group (%s): seeds %s start afresh", error, seeds)
    return (*init_group(task, p, seeds, device), False)


def train_vectorized(
    task: Task,
    p: TrainingParams,
    seeds: list[int],
    saved: dict | None = None,
    resume: GroupResume | None = None,
    probe=None,
):
    """Train ``seeds`` as one vectorised group; yield ``(seed, table, weights)`` per seed,
    in the order given, each equal to ``trainmap.training.loop.train(task, p, seed)``.

    saved: a ``GroupState.state_dict()`` of this group to go on from (resuming).
    resume: where the group's resumable state lives: restored from when ``saved`` is None,
    saved to at checkpoints (``trainmap.training.resume.GroupResume``).
    probe: the setting's probe set, scored on each seed's own module at each checkpoint
    (``trainmap.training.probe``: the same bits as the loop's), or None.
    """
    device = resolve_device(p.device)
    keep_freed_memory()
    if saved is None and resume is not None:
        saved = resume.restore()
    data, state, restored = start_group(task, p, seeds, saved, device)
    state.probe = probe
    if restored:
        where = resume.path if resume is not None else "a saved group state"
        for seed in seeds:
            log.info("resumed seed %d from step %d (%s)", seed, state.step, where)
    check_memory(task, p, data, state)
    kernels = SeedKernels()
    n_train = data.train_x.shape[1]
    progress = GroupProgress(seeds, math.ceil(n_train / p.batch_size) * p.epochs)
    log.info(
        "seeds %s vectorised on %s: %d train / %d eval examples each",
        seeds,
        device,
        n_train,
        data.eval_x.shape[1],
    )
    if state.step == 0 and not any(state.rows.values()):
        report = functools.partial(progress.report, epochs=p.epochs)
        data = checkpoint_and_drop(task, data, state, kernels, report)  # the init, row 0
    train_steps(task, p, data, state, kernels, progress, resume)
    log.info("kernels: %s", kernels.report())
    yield from finish(state, seeds)


def finish(state: GroupState, seeds: list[int]) -> Iterator[tuple[int, pd.DataFrame, dict]]:
    for i, seed in enumerate(state.seeds):
        state.finished[seed] = (False, state.weights(i))
    for seed in seeds:
        diverged, weights = state.finished[seed]
        table = pd.DataFrame(state.rows[seed], columns=["step", *RUN_COLUMNS, *METRIC_COLUMNS])
        table["diverged"] = diverged
        yield seed, with_probe_losses(table, state.rows[seed]), weights
