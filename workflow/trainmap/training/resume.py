"""Resumable training: save a run's whole ``RunState`` now and then, restore it after a kill.

A training job killed at any moment (SIGKILL, a preempted SLURM job, a node failure) and
started again continues from its last saved state and ends with the same metrics and
weights, byte for byte, as a run that was never stopped (on the same machine).

Where: one folder per seed beside the job's bundle, ``<runs>/.resume-seed<seed>/``.
Snakemake deletes an incomplete job's declared outputs (the bundle) before rerunning it;
this folder is no output, so it survives, and the job removes it once its bundle is
complete. It holds

- ``state.safetensors`` while the seed trains: every tensor of the state (model,
  optimizer, each ``torch.Generator``'s state, the epoch's data order) as tensors, and
  everything else (counters, the rows logged so far, the optimizer's settings) as JSON in
  the file's metadata (``tree_to_file``, the one serialiser: a seed's state and a
  vectorised group's are both nested structures of tensors and JSON values). No pickle
  anywhere: safetensors and JSON are data, not code.
- ``metrics.parquet``, ``model.safetensors`` and ``done.json`` once the seed finished, so
  that a rerun of a group job copies finished seeds instead of retraining them.

Every file is written atomically (temporary name, then rename), so a kill mid-write leaves
the previous state. A state carries a fingerprint of what decides the run (setting, task,
hyperparameters, code digest, seed); a state with another fingerprint is stale and
discarded, never resumed.

A vectorised group (``trainmap.training.vectorized``) saves its whole ``GroupState.state_dict()``
instead, one file for the group, ``group.safetensors`` in its first seed's folder
(``GroupResume``): the nested dicts, lists and tuples as JSON with every tensor replaced by
a key into the safetensors file.

The state is saved generically: every field of ``RunState`` by its type (``nn.Module``,
``torch.optim.Optimizer``, ``torch.Generator``, ``torch.Tensor``, or a JSON value; a
callable such as a hook is code and stays as initialised), so a field added to
``RunState`` is saved and restored without changes here.
"""

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from trainmap.io.atomic import atomic_path
from trainmap.io.columns import PROBE_FILE
from trainmap.io.files import write_json, write_parquet

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the layout below changes: older states are then discarded
META_KEY = "trainmap_resume"
STATE_FILE = "state.safetensors"
GROUP_FILE = "group.safetensors"
DONE_FILE = "done.json"
RUN_FILES = ("metrics.parquet", "model.safetensors")
JSON_TYPES = (type(None), bool, int, float, str, list, dict)


def fingerprint(**parts: Any) -> str:
    """A digest of what decides a run's results (JSON-able values)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    # clone: safetensors refuses tensors that share memory, and the copy is what we save
    return tensor.detach().to("cpu", copy=True).contiguous()


def state_to_file(state: Any, path: Path, run_fingerprint: str) -> None:
    """Write every field of ``state`` (a dataclass) to one safetensors file, atomically:
    a module's or optimizer's ``state_dict()``, a generator's state, a tensor or a JSON
    value, each as ``tree_to_file`` writes a nested structure (the one serialiser)."""
    saved: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, nn.Module | torch.optim.Optimizer):
            saved[f.name] = value.state_dict()
        elif isinstance(value, torch.Generator):
            saved[f.name] = value.get_state()
        elif isinstance(value, (torch.Tensor, *JSON_TYPES)):
            saved[f.name] = value
        elif callable(value):
            continue  # a hook is code, not state: the fresh state's own is kept
        else:
            raise TypeError(f"RunState.{f.name}: cannot save a {type(value).__name__}")
    tree_to_file(saved, path, run_fingerprint)


def _number(value: Any) -> Any:
    """JSON for NumPy scalars in logged rows."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot save {value!r} in a resumable state")


def state_from_file(state: Any, path: Path, run_fingerprint: str) -> bool:
    """Load the saved fields into a freshly initialised ``state`` (same config and seed).

    Returns False, leaving ``state`` untouched, when the file is stale (another
    fingerprint or format); a corrupt file raises ``SafetensorError``, ``ValueError`` or
    ``KeyError``.
    """
    saved = tree_from_file(path, run_fingerprint)
    if saved is None:
        return False
    # Every field is looked up before any is loaded: a damaged file raises here and
    # leaves ``state`` fresh, never half restored.
    device = _device(state)
    loads = []
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, nn.Module | torch.optim.Optimizer):
            loads.append((value.load_state_dict, saved[f.name]))
        elif isinstance(value, torch.Generator):
            loads.append((value.set_state, saved[f.name]))
        elif callable(value) and f.name not in saved:
            continue
        else:
            item = saved[f.name]
            item = item.to(device) if isinstance(item, torch.Tensor) else item
            loads.append((_setter(state, f.name), item))
    for load, item in loads:
        load(item)
    return True


def _setter(state: Any, name: str):
    return lambda value: setattr(state, name, value)


def _device(state: Any) -> torch.device:
    """Where the state's model lives (tensor fields go back there)."""
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, nn.Module):
            return next(value.parameters()).device
    return torch.device("cpu")


def tree_to_file(tree: Any, path: Path, run_fingerprint: str) -> None:
    """Write a nested structure (dicts, lists, tuples, tensors, JSON values) atomically:
    tensors into a safetensors file, the rest as JSON in its metadata (no pickle)."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = _cpu(value)
            return {"tensor": key}
        if isinstance(value, dict):  # keys keep their type (a seed, a parameter index)
            return {"dict": [[key, encode(item)] for key, item in value.items()]}
        if isinstance(value, tuple):
            return {"tuple": [encode(item) for item in value]}
        if isinstance(value, list):
            return [encode(item) for item in value]
        if isinstance(value, JSON_TYPES):
            return value
        return _number(value)

    meta = {"format": FORMAT, "fingerprint": run_fingerprint, "tree": encode(tree)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, default=_number)})


def tree_from_file(path: Path, run_fingerprint: str) -> Any:
    """The structure ``tree_to_file`` wrote (tensors on the CPU), or None when the file is
    stale (another fingerprint or format); a corrupt file raises."""
    with safe_open(str(path), framework="pt") as file:
        meta = json.loads((file.metadata() or {})[META_KEY])
        if meta.get("format") != FORMAT or meta.get("fingerprint") != run_fingerprint:
            return None
        tensors = {key: file.get_tensor(key) for key in file.keys()}

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        (kind, body), *rest = value.items()
        if rest or kind not in ("tensor", "dict", "tuple"):
            raise ValueError(f"{path}: unexpected entry {value!r}")
        if kind == "tensor":
            return tensors[body]
        if kind == "tuple":
            return tuple(decode(item) for item in body)
        return {key: decode(item) for key, item in body}

    return decode(meta["tree"])


class SeedResume:
    """The resumable state of one seed: restore it once, save it now and then.

    every_s: seconds of training between saves (0: at every checkpoint it is offered).
    """

    def __init__(self, folder: Path, seed: int, run_fingerprint: str, every_s: float):
        self.folder = folder
        self.seed = seed
        self.fingerprint = run_fingerprint
        self.every_s = every_s
        self.last_save = time.perf_counter()
        self.saves = 0
        self.save_seconds = 0.0

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def restore(self, state: Any) -> bool:
        """Load a saved state into the fresh ``state``; True when training resumes."""
        self.last_save = time.perf_counter()
        if not self.path.exists():
            return False
        try:
            resumed = state_from_file(state, self.path, self.fingerprint)
        except (SafetensorError, ValueError, KeyError, RuntimeError) as error:
            # A state is written atomically, so this is a damaged disk or a foreign file.
            log.warning("unreadable resumable state %s (%s): seed %d starts afresh",
                        self.path, error, self.seed)  # fmt: skip
            return False
        if not resumed:
            log.info("resumable state %s is from another config or code: seed %d starts "
                     "afresh", self.path, self.seed)  # fmt: skip
            return False
        log.info("resumed seed %d from step %d (%s)", self.seed, state.step, self.path)
        return True

    def at_checkpoint(self, state: Any) -> None:
        """Called at every checkpoint: saves when ``every_s`` seconds have passed."""
        now = time.perf_counter()
        if now - self.last_save < self.every_s:
            return
        state_to_file(state, self.path, self.fingerprint)
        self.last_save = time.perf_counter()
        self.saves += 1
        self.save_seconds += self.last_save - now


class GroupResume:
    """The resumable state of a vectorised group of seeds (``GroupState.state_dict()``).

    Lives in the first seed's folder; its fingerprint covers the group's seeds, so a rerun
    that trains another set of seeds (some finished meanwhile) starts them afresh.
    every_s: seconds of training between saves (0: at every checkpoint it is offered).
    """

    def __init__(self, folder: Path, seeds: list[int], run_fingerprint: str, every_s: float):
        self.folder = folder
        self.seeds = list(seeds)
        self.fingerprint = run_fingerprint
        self.every_s = every_s
        self.last_save = time.perf_counter()
        self.saves = 0

    @property
    def path(self) -> Path:
        return self.folder / GROUP_FILE

    def restore(self) -> dict | None:
        """The saved group state to go on from, or None (train from the start)."""
        self.last_save = time.perf_counter()
        if not self.path.exists():
            return None
        try:
            saved = tree_from_file(self.path, self.fingerprint)
        except (SafetensorError, ValueError, KeyError, RuntimeError) as error:
            log.warning("unreadable resumable state %s (%s): seeds %s start afresh",
                        self.path, error, self.seeds)  # fmt: skip
            return None
        if saved is None:
            log.info("resumable state %s is from another config, code or group: seeds %s "
                     "start afresh", self.path, self.seeds)  # fmt: skip
        return saved

    def at_checkpoint(self, group: Any) -> None:
        """Called at every checkpoint with the ``GroupState``: saves when ``every_s``
        seconds have passed."""
        if time.perf_counter() - self.last_save < self.every_s:
            return
        tree_to_file(group.state_dict(), self.path, self.fingerprint)
        self.last_save = time.perf_counter()
        self.saves += 1


class ResumeStore:
    """The resumable states and finished runs of one training job's seeds.

    root: the folder that holds ``.resume-seed<seed>/`` (the setting's ``runs/``).
    run_fingerprint: what decides the runs (the seed is added per seed).
    """

    def __init__(self, root: str | Path, run_fingerprint: str, every_s: float):
        self.root = Path(root)
        self.fingerprint = run_fingerprint
        self.every_s = every_s

    def folder(self, seed: int) -> Path:
        return self.root / f".resume-seed{seed}"

    def seed_fingerprint(self, seed: int) -> str:
        return fingerprint(run=self.fingerprint, seed=seed)

    def resumer(self, seed: int) -> SeedResume:
        return SeedResume(self.folder(seed), seed, self.seed_fingerprint(seed), self.every_s)

    def group_resumer(self, seeds: list[int]) -> GroupResume:
        run = fingerprint(run=self.fingerprint, group=list(seeds))
        return GroupResume(self.folder(seeds[0]), seeds, run, self.every_s)

    def has_seed_state(self, seed: int) -> bool:
        """Whether a per-seed (loop) state of ``seed`` waits to be resumed."""
        return (self.folder(seed) / STATE_FILE).exists()

    def is_finished(self, seed: int) -> bool:
        """Whether an earlier attempt of this job finished ``seed`` (same fingerprint)."""
        done = self.folder(seed) / DONE_FILE
        try:
            marker = json.loads(done.read_text())
        except (OSError, ValueError):
            return False
        return marker.get("fingerprint") == self.seed_fingerprint(seed) and all(
            (self.folder(seed) / name).is_file() for name in RUN_FILES
        )

    def save_finished(
        self, seed: int, table, weights: dict[str, torch.Tensor], probe_losses=None
    ) -> None:
        """A finished seed's files; ``done.json`` last, so it marks them complete.
        probe_losses: the seed's probe_losses.parquet table, if the setting has a probe."""
        folder = self.folder(seed)
        write_parquet(table, folder / "metrics.parquet")
        if probe_losses is not None:
            write_parquet(probe_losses, folder / PROBE_FILE)
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(weights, str(tmp))
        write_json({"fingerprint": self.seed_fingerprint(seed)}, folder / DONE_FILE)
        (folder / STATE_FILE).unlink(missing_ok=True)

    def export(self, seed: int, destination: str | Path) -> None:
        """Copy a finished seed's files into ``destination`` (the bundle's seed folder)."""
        probe = (PROBE_FILE,) if (self.folder(seed) / PROBE_FILE).is_file() else ()
        for name in RUN_FILES + probe:
            with atomic_path(Path(destination) / name) as tmp:
                shutil.copyfile(self.folder(seed) / name, tmp)

    def clear(self, seeds: list[int]) -> None:
        """Remove the seeds' folders: called once the job's outputs are complete."""
        for seed in seeds:
            shutil.rmtree(self.folder(seed), ignore_errors=True)
