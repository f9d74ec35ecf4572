"""A vectorised group's data and state: every seed's tensors stacked over a seed dimension.

``StackedSplits`` holds the seeds' data (S, n, ...), ``GroupState`` everything that changes
while the group trains (stacked parameters, the optimizer, every seed's generators,
counters, data position, rows), with ``state_dict``/``load_state_dict`` for resuming.
``trainmap.training.vectorized`` trains it.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainmap.tasks.base import Splits, Task
from trainmap.tasks.params import TrainingParams
from trainmap.training.common import generator, make_optimizer


@dataclass
class StackedSplits(Splits):
    """Every seed's data with a leading seed dim: inputs (S, n, ...), targets (S, n, ...),
    and the train probe (S, m, ...) when the task has one: ``Splits``' fields and
    ``train_probe``, stacked.

    Seeds whose data are equal (e.g. a fixed dataset) share one copy (a stride-0 expand)."""

    @staticmethod
    def stack(splits: list[Splits]) -> "StackedSplits":
        out = []
        for f in dataclasses.fields(StackedSplits):
            tensors = [getattr(s, f.name) for s in splits]
            if all(t is None for t in tensors):
                out.append(None)
                continue
            if any(t is None or t.shape != tensors[0].shape for t in tensors):
                raise ValueError(f"seeds' {f.name} differ in shape: no seed dimension to stack on")
            shared = all(torch.equal(t, tensors[0]) for t in tensors[1:])
            out.append(
                tensors[0].expand(len(tensors), *tensors[0].shape)
                if shared
                else torch.stack(tensors)
            )
        return StackedSplits(*out)

    def keep(self, rows: torch.Tensor) -> "StackedSplits":
        """The seeds at positions ``rows`` (a shared copy stays shared)."""

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t[0].expand(len(rows), *t.shape[1:]) if t.stride(0) == 0 else t[rows]

        return StackedSplits(*(take(t) for t in self._tensors()))

    def nbytes(self) -> int:
        return sum(
            t[0].nbytes if t.stride(0) == 0 else t.nbytes for t in self._tensors() if t is not None
        )


def optimizer_form(p: TrainingParams, params: dict[str, torch.Tensor]) -> str:
    """ "stacked" when one optimizer over the stacked tensors updates every seed's slice
    exactly as that seed's own optimizer would, else "per seed" (one optimizer over
    per-seed views: each tensor the size the loop's optimizer sees).

    Checked on random values for three steps (AdamW's first step differs, SGD's momentum
    starts at the second): fused AdamW's CPU kernel rounds a tensor's vectorised body and
    its scalar tail differently, so a 6-element bias stacked over seeds is not 6-element
    biases updated one by one; SGD's elementwise steps are. The check uses the group's own
    shapes (S, ...): which elements fall in the tail depends on S (a 10-element bias
    stacked over 64 seeds passed where the same bias over 2 seeds differs).
    """
    gen = torch.Generator().manual_seed(2)
    shapes = [tuple(v.shape) for v in params.values()]
    n_seeds = shapes[0][0]
    device = next(iter(params.values())).device

    def probe(shape: tuple[int, ...]) -> torch.Tensor:
        values = torch.randn(shape, generator=gen) * torch.randn(shape, generator=gen).mul(3).exp()
        return values.to(device)

    def run(tensors: list[torch.Tensor], grads, grads_of) -> list[torch.Tensor]:
        leaves = [nn.Parameter(t.clone()) for t in tensors]
        optimizer = make_optimizer(p, leaves)
        for step_grads in grads:
            for leaf, grad in zip(leaves, step_grads, strict=True):
                leaf.grad = grads_of(grad).clone()
            optimizer.step()
        # The state too (AdamW's moments, SGD's momentum): a difference there can take
        # more than three steps to reach the parameters.
        states = [
            value
            for leaf in leaves
            for _, value in sorted(optimizer.state[leaf].items())
            if torch.is_tensor(value) and value.ndim > 0
        ]
        return [leaf.detach() for leaf in leaves] + states

    # 64 seeds' worth of values in all, spread over magnitudes: the two paths differ only
    # for some values, and a group's few tail elements could agree by chance.
    for _ in range(math.ceil(64 / n_seeds)):
        start = [probe(shape) for shape in shapes]
        grads = [[probe(shape) for shape in shapes] for _ in range(3)]
        stacked = run(start, grads, lambda g: g)
        for s in range(n_seeds):
            alone = run([t[s] for t in start], grads, lambda g, s=s: g[s])
            if not all(torch.equal(a, b[s]) for a, b in zip(alone, stacked, strict=True)):
                return "per seed"
    return "stacked"


class GroupState:
    """Everything that changes while a vectorised group trains, saved and restored whole.

    params: state_dict name -> (S, ...) leaf tensors, the optimizer's parameters; models:
    one module per seed still training, parameters viewing its slices; order_gens: each
    seed's data-order generator; orders (S, n) and position: the epoch's permutations and
    the next batch's start; rows/finished per seed. ``state_dict``/``load_state_dict``
    capture all of it (the data are re-derived from the seeds).
    """

    def __init__(self, p: TrainingParams, seeds: list[int], models: list[nn.Module]):
        self.p = p
        self.seeds = list(seeds)  # seeds still training, in group order
        self.models = models
        self.params = {
            name: nn.Parameter(torch.stack([dict(m.named_parameters())[name] for m in models]))
            for name, _ in models[0].named_parameters()
        }
        self._point_models_at_params()
        self.optimizer_form = optimizer_form(p, self.params)
        self._build_optimizer()
        self.order_gens = [generator("order", seed) for seed in seeds]
        self.orders: torch.Tensor | None = None
        self.position = 0
        self.epoch = 0
        self.step = 0
        self.rows: dict[int, list[dict[str, Any]]] = {seed: [] for seed in seeds}
        self.probe = None  # a checkpoint hook (trainmap.training.probe), not saved state
        # seed -> (diverged, final weights) for seeds that stopped.
        self.finished: dict[int, tuple[bool, dict[str, torch.Tensor]]] = {}

    def _build_optimizer(self) -> None:
        """The optimizer over the stacked tensors, or over per-seed views of them (param
        n of seed s at n * S + s) where ``optimizer_form`` found stacking inexact."""
        if self.optimizer_form == "stacked":
            self.views: list[torch.Tensor] = []
            self.optimizer = make_optimizer(self.p, list(self.params.values()))
            return
        n_seeds = len(self.seeds)
        self.views = [v.detach()[s] for v in self.params.values() for s in range(n_seeds)]
        self.optimizer = make_optimizer(self.p, self.views)

    def zero_grad(self) -> None:
        for tensor in [*self.params.values(), *self.views]:
            tensor.grad = None

    def step_optimizer(self) -> None:
        """One optimizer step on the gradients of the last backward pass."""
        if self.views:  # each seed's slice of each gradient, to its view
            n_seeds = len(self.seeds)
            for n, param in enumerate(self.params.values()):
                for s in range(n_seeds):
                    self.views[n * n_seeds + s].grad = param.grad[s]
        self.optimizer.step()

    def _point_models_at_params(self) -> None:
        for i, model in enumerate(self.models):
            for name, param in model.named_parameters():
                param.data = self.params[name].data[i]  # a view: the optimizer's steps show

    def weights(self, i: int) -> dict[str, torch.Tensor]:
        """Seed at position i's state_dict, copied to the CPU (contract: module names)."""
        return {k: v.detach().cpu().clone() for k, v in self.models[i].state_dict().items()}

    def drop(self, positions: list[int]) -> None:
        """Stop the seeds at ``positions`` (diverged): their rows and weights are kept, the
        rest go on with parameters, optimizer state, generators and orders compacted."""
        for i in positions:
            self.finished[self.seeds[i]] = (True, self.weights(i))
        keep = [i for i in range(len(self.seeds)) if i not in positions]
        index = torch.tensor(keep, device=next(iter(self.params.values())).device)
        old = self.optimizer.state_dict()
        n_before = len(self.seeds)
        self.seeds = [self.seeds[i] for i in keep]
        self.models = [self.models[i] for i in keep]
        self.order_gens = [self.order_gens[i] for i in keep]
        if self.orders is not None:
            self.orders = self.orders[index]
        self.params = {
            name: nn.Parameter(p.detach()[index].clone()) for name, p in self.params.items()
        }
        self._point_models_at_params()
        # The form is checked again: whether stacking rounds as the loop depends on S.
        old_form, self.optimizer_form = self.optimizer_form, optimizer_form(self.p, self.params)
        self._build_optimizer()
        # Each kept (parameter n, seed i)'s optimizer state, then laid out in the new form.
        per_seed: dict[tuple[int, int], dict[str, Any]] = {}
        for n in range(len(self.params)):
            for i in keep:
                if old_form == "stacked" and n in old["state"]:
                    per_seed[n, i] = {
                        key: value[i] if torch.is_tensor(value) and value.ndim > 0 else value
                        for key, value in old["state"][n].items()
                    }
                elif old_form != "stacked" and n * n_before + i in old["state"]:
                    per_seed[n, i] = old["state"][n * n_before + i]
        state: dict[int, dict[str, Any]] = {}
        for (n, i), entry in per_seed.items():
            j = keep.index(i)
            if self.optimizer_form != "stacked":
                state[n * len(keep) + j] = entry
                continue
            slices = [per_seed[n, k] for k in keep]  # every kept seed has the same keys
            state[n] = {
                key: torch.stack([e[key] for e in slices])
                if torch.is_tensor(value) and value.ndim > 0
                else value
                for key, value in entry.items()
            }
        old["state"] = state
        old["param_groups"][0]["params"] = list(
            range(len(self.optimizer.param_groups[0]["params"]))
        )
        self.optimizer.load_state_dict(old)

    def state_dict(self) -> dict[str, Any]:
        """Every piece of the group's state (tensors and plain values), for a resumable save."""
        return {
            "seeds": list(self.seeds),
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "optimizer_form": self.optimizer_form,
            "optimizer": self.optimizer.state_dict(),
            "order_gens": [g.get_state() for g in self.order_gens],
            "orders": None if self.orders is None else self.orders.clone(),
            "position": self.position,
            "epoch": self.epoch,
            "step": self.step,
            "rows": {seed: [dict(r) for r in rows] for seed, rows in self.rows.items()},
            "finished": {
                seed: (diverged, dict(w)) for seed, (diverged, w) in self.finished.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` into a group built for the same setting and seeds."""
        gone = [i for i, seed in enumerate(self.seeds) if seed not in state["seeds"]]
        if gone:
            self.drop(gone)
        if self.seeds != list(state["seeds"]):
            raise ValueError(f"saved group trains seeds {state['seeds']}, this one {self.seeds}")
        if state["optimizer_form"] != self.optimizer_form:
            raise ValueError(
                f"saved group's optimizer form {state['optimizer_form']!r} differs from "
                f"{self.optimizer_form!r} here (another torch build or device?)"
            )
        with torch.no_grad():
            for name, value in state["params"].items():
                self.params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        for gen, gen_state in zip(self.order_gens, state["order_gens"], strict=True):
            gen.set_state(gen_state)
        device = next(iter(self.params.values())).device
        self.orders = None if state["orders"] is None else state["orders"].to(device)
        self.position, self.epoch, self.step = state["position"], state["epoch"], state["step"]
        self.rows = {seed: [dict(r) for r in rows] for seed, rows in state["rows"].items()}
        self.finished = dict(state["finished"])


def init_group(task: Task, p: TrainingParams, seeds: list[int], device: torch.device):
    """Every seed's data and model drawn exactly as ``trainmap.training.loop.init_run`` does."""
    splits = [task.make_data(p, generator("data", seed)).to(device) for seed in seeds]
    models = []
    for seed in seeds:
        model = task.make_model(p)
        model.reset_parameters(generator("init", seed))
        models.append(model.to(device))
    return StackedSplits.stack(splits), GroupState(p, seeds, models)


def batch_of(data: StackedSplits, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's batch: index (S, B) into its own training rows -> x (S, B, ...), y.

    One ``index_select`` over the seeds' rows laid end to end (a shared copy is indexed
    directly): a copy, so exact, and ~10x faster than 2-D advanced indexing here.
    """

    def take(t: torch.Tensor) -> torch.Tensor:
        n_seeds, n = t.shape[:2]
        if t.stride(0) == 0:
            rows = t[0].index_select(0, index.reshape(-1))
        else:
            offsets = torch.arange(0, n_seeds * n, n, device=index.device)[:, None]
            rows = t.reshape(n_seeds * n, *t.shape[2:]).index_select(
                0, (index + offsets).reshape(-1)
            )
        return rows.view(*index.shape, *t.shape[2:])

    return take(data.train_x), take(data.train_y)
