"""Checkpoint series read layer by layer into the one metrics engine (issues 19, 32).

What a checkpoint's metrics read is decided from its tensor names and shapes alone
(``trainmap.checkpoints.select``: a family's rule, the generic rule on the architecture of
its config.json, or name patterns); then it is read one layer at a time (the tensors up to
the first numbered module, e.g. ``model.layers.3``): safetensors through ``safe_open``
(memory-mapped, only the tensors the rule reads; embeddings and heads are never loaded),
``.bin`` files through ``torch.load(mmap=True, weights_only=True)`` (each layer's pages
handed back once it is done: ``trainmap.checkpoints.pages``; torch < 1.6's format cannot be
mapped and is read whole), and each layer's tensors go into
``trainmap.metrics.fast.metrics_of_layers``. Task families (a registered task's model) need
the whole state dict to load their model strictly; their checkpoints are small and are read
whole.
"""

import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open

from trainmap.checkpoints.pages import MappedFile
from trainmap.checkpoints.read import (
    CheckpointError,
    hub_snapshot,
    unreadable,
    weight_files,
    weight_groups,
)
from trainmap.checkpoints.select import TensorSelection, select_tensors
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.fast import metrics_of_layers
from trainmap.metrics.generic import Entry, groups_of
from trainmap.metrics.weights import WeightGroups

log = logging.getLogger(__name__)


class _Reader:
    """name -> tensor of one weights file, read on demand, never unpickled."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.mapped: MappedFile | None = None
        try:
            if file.suffix == ".safetensors":
                with safe_open(file, framework="pt") as f:
                    self.names = list(f.keys())
                self.tensors = None
            else:
                self.tensors = self._load(file)
                self.names = list(self.tensors)
        except CheckpointError:
            raise
        except Exception as error:  # safetensors and the unpickler raise many types
            raise unreadable(file, error) from error

    def _load(self, file: Path) -> dict[str, torch.Tensor]:
        """A torch.save file: mapped (tensors paged in when read, handed back by release)
        where it is a zip archive; the legacy format of torch < 1.6 cannot be mapped and is
        read whole, as today's path reads it."""
        mappable = zipfile.is_zipfile(file)
        tensors = torch.load(file, map_location="cpu", weights_only=True, mmap=mappable)
        if not isinstance(tensors, Mapping):
            raise CheckpointError(f"{file}: not a name -> tensor mapping (a state_dict)")
        if mappable:
            self.mapped = MappedFile(file)
        else:
            log.info("%s: legacy torch.save format, read whole (it cannot be mapped)", file)
        return dict(tensors)

    def read(self, names: list[str]) -> dict[str, torch.Tensor]:
        if self.tensors is not None:
            return {name: self.tensors[name] for name in names}
        try:  # opened per call: the mapping (and its resident pages) ends with the call
            with safe_open(self.file, framework="pt") as f:
                return {name: f.get_tensor(name) for name in names}
        except Exception as error:
            raise unreadable(self.file, error) from error

    def release(self, tensors: Iterable[torch.Tensor]) -> None:
        """Hand back the resident pages of tensors read from a mapped file (a no-op for
        safetensors, whose mapping ends with each read, and for files read whole)."""
        if self.mapped is not None:
            self.mapped.release(tensors)


def layer_key(name: str) -> str:
    """The layer a tensor belongs to: its name up to the first numbered module
    (``model.layers.3`` of ``model.layers.3.mlp.up_proj.weight``); "" for the others."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ""


def layer_parts(path: Path, entries: tuple[Entry, ...]) -> Callable[[], Iterator[WeightGroups]]:
    """A callable yielding the checkpoint's WeightGroups one layer at a time (``entries``
    applied to that layer's tensors, layers in the entries' order); each call reads the
    files again."""
    readers = [_Reader(file) for file in weight_files(path)]
    holder = {name: reader for reader in readers for name in reader.names}
    layers: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.name not in holder:
            raise CheckpointError(f"{path}: no tensor {entry.name} in its weight files")
        layers.setdefault(layer_key(entry.name), []).append(entry)

    def parts() -> Iterator[WeightGroups]:
        for layer in layers.values():
            read = {}  # reader -> that file's tensors of this layer
            for reader in readers:
                names = [e.name for e in layer if holder[e.name] is reader]
                if names:
                    read[reader] = reader.read(names)
            tensors = {name: t for part in read.values() for name, t in part.items()}
            try:
                groups = groups_of(layer, tensors)
            except (ValueError, RuntimeError) as error:
                raise CheckpointError(f"{path}: {layer[0].name} ...: {error}") from error
            yield groups
            # the caller has done with the layer: its pages of a mapped .bin go back (else
            # the whole file ends up resident, pass after pass)
            for reader in read:
                reader.release(read[reader].values())
            del read, tensors, groups  # one layer alive at a time, also while the next is read

    return parts


def checkpoint_metrics(
    path: Path,
    model: str | None,
    params: Mapping[str, Any],
    device: torch.device,
    threads: int = 1,
    report: dict[str, Any] | None = None,
    spectra: str = "exact",
    selection: TensorSelection | None = None,
) -> dict[str, float]:
    """The 14 metrics of the checkpoint at ``path``.

    model: the setting's family (None: ``auto``); params: the task hyperparameters when
    the family is a task; selection: what to read (default ``select_tensors(path, model)``).
    Everything but a task family streams layer by layer. report: if given, gets the
    engine's counts and ``selection``. spectra: ``exact`` or the opt-in ``sketched``
    estimates (trainmap.metrics.sketched).
    """
    selection = selection or select_tensors(path, model)
    if report is not None:
        report["selection"] = selection
    if selection.entries is None:  # a task family: its model reads the whole state dict
        groups = weight_groups(path, model, params)
        return metrics_of_layers(lambda: [groups], device, threads, report, spectra=spectra)
    parts = layer_parts(path, selection.entries)
    return metrics_of_layers(parts, device, threads, report, spectra=spectra)


def series_metrics(
    locations: Mapping[int, str],
    hub: bool,
    model: str | None,
    params: Mapping[str, Any],
    device: torch.device,
    threads: int = 1,
    spectra: str = "exact",
    patterns: Mapping[str, list[str] | None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``step`` and the 14 metrics of every checkpoint of one seed, in step order, one
    checkpoint (one layer, but for task families) in memory at a time; and the seed's
    selection record (``TensorSelection.record``: weights.json). patterns: ``matrices`` and
    ``biases`` name patterns, if the setting gives them. Every checkpoint of the seed must
    select the same tensors."""
    rows, record = [], None
    start = time.perf_counter()
    for done, (step, location) in enumerate(sorted(locations.items()), start=1):
        tick, cpu = time.perf_counter(), time.process_time()
        path = hub_snapshot(location) if hub else Path(location)
        selection = select_tensors(path, model, **(patterns or {}))
        if record is None:
            record = selection.record()
            if selection.bias_free:
                log.info("%s: %s", location, selection.record()["note"])
        elif selection.record() != record:
            raise CheckpointError(
                f"{location}: its tensors are not those of the series' first checkpoint "
                f"({sorted(locations.items())[0][1]}): {selection.record()} vs {record}"
            )
        report: dict[str, Any] = {}
        metrics = checkpoint_metrics(path, model, params, device, threads, report, spectra,
                                     selection)  # fmt: skip
        rows.append({"step": step, **metrics})
        elapsed = time.perf_counter() - start
        log.info(
            "checkpoint %d/%d step %d (%s): %.2fs (%.2f CPU-s), %s matrices, %s by SVD; "
            "%.1fs elapsed, ~%.1fs left",
            done, len(locations), step, location, time.perf_counter() - tick,
            time.process_time() - cpu, report.get("matrices", "?"),
            report.get("svd_fallbacks", "?"), elapsed,
            elapsed / done * (len(locations) - done),
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["step", *METRIC_COLUMNS]), record or {}
