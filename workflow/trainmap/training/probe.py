"""Function space: a fixed probe set and every checkpoint's per-example losses on it.

A setting with ``probe: {n, split, seed}`` draws its probe set once: the task's data are
made from a generator of their own (``derive_seed("probe data", seed)``, not any run's),
and ``n`` examples of the ``split`` are picked by ``derive_seed("probe", seed)``, so every
seed of the setting (and every job) scores the same examples. At each checkpoint the
loops (``trainmap.training.loop``, ``trainmap.training.vectorized``) call the probe set on
the run's model; the per-example losses travel in the checkpoint's row under
``PROBE_KEY`` (so a resumed run keeps them) and end in ``probe_losses.parquet``.

With a task whose split depends on the seed (sparse parity, modular addition draw their
own split per run) a probe example may be in some seed's training data: the probe set is
fixed, the runs' data are not.

probe_losses.parquet (wide): ``setting, seed, step`` and one float column per probe
example, ``probe_<i>`` zero-padded to the width of n-1 (``probe_00 .. probe_63`` for 64),
the task's loss on that example alone (masked LM: the mean over the example's chosen
tokens, NaN where none is chosen).
"""

import base64
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainmap.errors import ConfigError
from trainmap.io.columns import probe_columns
from trainmap.seeding import derive_seed

PROBE_KEY = "probe_losses"  # the row entry holding a checkpoint's per-example losses


def _rows(out, i: int):
    """Row i of a model output, kept 2-D: a tensor, or a ModelOutput of tensors."""
    if isinstance(out, torch.Tensor):
        return out[i : i + 1]
    return type(out)(**{k: v[i : i + 1] for k, v in out.items()})


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """The probe examples: x (n, ...), y (n, ...) on the CPU.

    Callable as a checkpoint hook: ``probe(task, model, chunk)`` -> n losses (a hook is
    code, not state: a resumable state skips it, ``trainmap.training.resume``).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    @torch.no_grad()
    def __call__(self, task, model: nn.Module, chunk: int) -> str:
        """Per-example losses of ``model`` (eval mode), chunk by chunk of ``chunk`` rows,
        packed (``encode_losses``).

        Each loss is ``task.loss`` on the one example, vmapped over the chunk where the
        loss allows it (else row by row): the same code for a run trained alone and for a
        seed of a vectorised group, so both give the same bits.
        """
        device = next(model.parameters()).device
        training = model.training
        model.eval()
        losses = []
        for start in range(0, len(self.x), chunk):
            x = self.x[start : start + chunk].to(device)
            y = self.y[start : start + chunk].to(device)
            out = model(x)
            losses.append(_per_example(task, out, y))
        model.train(training)
        return encode_losses(torch.cat(losses))


def encode_losses(losses: torch.Tensor) -> str:
    """n losses as base64 of their float32 bytes: exact, and a row of a resumable state
    (JSON) holds 2.7 KB for 512 examples instead of ~10 KB of decimal numbers."""
    values = losses.detach().to("cpu", torch.float32).numpy().astype("<f4")
    return base64.b64encode(values.tobytes()).decode("ascii")


def decode_losses(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _per_example(task, out, y: torch.Tensor) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        try:
            one = lambda o, t: task.loss(o.unsqueeze(0), t.unsqueeze(0))  # noqa: E731
            return torch.func.vmap(one)(out, y)
        except RuntimeError:  # a loss vmap cannot batch (data-dependent shapes)
            pass
    return torch.stack([task.loss(_rows(out, i), y[i : i + 1]) for i in range(len(y))])


def draw_probe(task, params, options: dict, where: str = "probe") -> ProbeSet:
    """The setting's probe set. options: ``{n, split, seed}`` (config defaults filled)."""
    n, split, seed = options["n"], options["split"], options["seed"]
    data = task.make_data(params, torch.Generator().manual_seed(derive_seed("probe data", seed)))
    x, y = (data.eval_x, data.eval_y) if split == "eval" else (data.train_x, data.train_y)
    if n > len(x):
        raise ConfigError(f"{where}.n: {n} probe examples, but the {split} split has {len(x)}")
    pick = torch.Generator().manual_seed(derive_seed("probe", seed))
    rows = torch.randperm(len(x), generator=pick)[:n].sort().values
    return ProbeSet(x[rows].cpu().clone(), y[rows].cpu().clone())


def with_probe_losses(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """A run's checkpoint table with a ``PROBE_KEY`` column (an (n,) float32 array per row)
    when its rows carry probe losses; unchanged otherwise (a setting without ``probe:``)."""
    if rows and PROBE_KEY in rows[0]:
        table[PROBE_KEY] = [decode_losses(row[PROBE_KEY]) for row in rows]
    return table


def probe_table(losses: pd.Series, steps: pd.Series, setting: str, seed: int) -> pd.DataFrame:
    """probe_losses.parquet of one run: ``setting, seed, step`` and ``probe_*`` columns."""
    values = np.stack(list(losses)).astype(np.float32)  # the model's float32 losses
    table = pd.DataFrame(values, columns=probe_columns(values.shape[1]))
    table.insert(0, "setting", setting)
    table.insert(1, "seed", seed)
    table.insert(2, "step", steps.to_numpy())
    return table
