"""Vectorised or one by one: how a training job trains its group of seeds.

The one module above both loops (``trainmap.training.loop``, one seed after another, and
``trainmap.training.vectorized``, the seeds at once over a seed dimension): it resolves
the setting's ``vectorize`` for the job and hands the seeds to one of them.
"""

import logging

from torch import nn

from trainmap.errors import ConfigError
from trainmap.tasks.base import Task
from trainmap.tasks.params import TrainingParams
from trainmap.training.common import resolve_device
from trainmap.training.loop import train_one_by_one
from trainmap.training.resume import ResumeStore
from trainmap.training.vectorized import train_vectorized

log = logging.getLogger(__name__)


def train_group(
    task: Task,
    p: TrainingParams,
    seeds: list[int],
    vectorize: str = "auto",
    store: ResumeStore | None = None,
):
    """Train the seeds of one job; yield ``(seed, table, weights)`` per seed, in order.

    vectorize: ``true`` trains them at once over a seed dimension
    (``trainmap.training.vectorized``, the same results bit for bit), ``false`` one after
    another, ``auto`` vectorised where the model has a stacked form that was measured to
    pay on this device (``should_vectorize``).
    store: where the job's resumable states live (``trainmap.training.resume``: a group's
    state, or each seed's); None: not resumable.
    """
    if not seeds:  # every seed finished in an earlier attempt of the job
        return
    if should_vectorize(task, p, seeds, vectorize):
        if store is None:
            yield from train_vectorized(task, p, seeds)
            return
        # An earlier attempt trained one after another (another vectorize, or auto on
        # another device) and left per-seed states: resume those rather than lose them.
        if not any(store.has_seed_state(seed) for seed in seeds):
            yield from train_vectorized(task, p, seeds, resume=store.group_resumer(seeds))
            return
        log.info("seeds %s have per-seed resumable states: resumed one after another", seeds)
    yield from train_one_by_one(task, p, seeds, store.resumer if store else None)


def is_stackable(model: nn.Module) -> bool:
    return callable(getattr(model, "stacked_forward", None))


def should_vectorize(task: Task, p: TrainingParams, seeds: list[int], vectorize: str) -> bool:
    """The setting's ``vectorize`` (auto | true | false) resolved for this group.

    auto: vectorised when the task's model is stackable, the group has 2 or more seeds and
    the model's ``stack_pays_on`` lists the device (config/README.md has the numbers).
    true on a model without a stacked form, or on a task with a ``train_batch`` hook, is
    an error naming the task.
    """
    if vectorize not in ("auto", "true", "false"):
        raise ConfigError(f"vectorize: {vectorize!r} is not one of auto, true, false")
    if vectorize == "false":
        return False
    model = task.make_model(p)
    # A per-batch hook (augmentation, masking) draws from each seed's batch generator
    # inside the loop's step: the group has no stacked form of it.
    why = (
        f"({type(model).__name__}) has no stacked form"
        if not is_stackable(model)
        else "transforms each training batch (train_batch), which a group does not stack"
        if task.train_batch is not None
        else None
    )
    if why is not None:
        if vectorize == "true":
            raise ConfigError(f"vectorize: true, but task {task.name!r} {why}; use auto or false")
        return False
    if vectorize == "true":
        return True
    device = resolve_device(p.device).type
    return len(seeds) >= 2 and device in getattr(model, "stack_pays_on", ())
