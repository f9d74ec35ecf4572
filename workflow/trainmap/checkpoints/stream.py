"""Checkpoint series read layer by layer into the fast exact metrics (issue 19).

``trainmap.checkpoints.read.series_metrics`` reads a whole state dict and computes float64
metrics over all of it at once (3.0 GB peak for one BERT-base checkpoint). Here a
transformer checkpoint (families ``bert``, ``gpt2``, ``gpt_neox``) is read one layer at a
time: safetensors through ``safe_open`` (memory-mapped, only the tensors the family's rule
reads; embeddings and heads are never loaded), ``.bin`` files through
``torch.load(mmap=True, weights_only=True)`` (each layer's pages handed back once it is
done: ``trainmap.checkpoints.pages``; torch < 1.6's format cannot be mapped and is read
whole), and each layer's tensors go through the same
family rule (``trainmap.metrics.families``) into ``trainmap.metrics.fast.metrics_of_layers``.
Task families (a registered task's model) need the whole state dict to load their model
strictly; their checkpoints are small and are read whole, as before.
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
    family_rule,
    hub_snapshot,
    model_config,
    unreadable,
    weight_files,
    weight_groups,
)
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.families import LAYER_PATTERNS, layer_of
from trainmap.metrics.fast import compute_metrics_fast, metrics_of_layers
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


def layer_parts(
    path: Path, family: str, config: Mapping[str, Any]
) -> Callable[[], Iterator[WeightGroups]]:
    """A callable yielding the checkpoint's WeightGroups one layer at a time (the family
    rule applied to that layer's tensors); each call reads the files again."""
    readers = [_Reader(file) for file in weight_files(path)]
    layers: dict[int, list[tuple[_Reader, str]]] = {}
    for reader in readers:
        for name in reader.names:
            layer = layer_of(family, name)
            if layer is not None:
                layers.setdefault(layer, []).append((reader, name))
    if not layers:
        raise CheckpointError(
            f"{path}: weights do not fit family {family!r}: no tensor is named like its "
            f"layers ({', '.join(p.pattern for p in LAYER_PATTERNS[family])})"
        )
    rule = family_rule(family)

    def parts() -> Iterator[WeightGroups]:
        for layer in sorted(layers):
            read = {}  # reader -> that file's tensors of this layer
            for reader in readers:
                names = [name for r, name in layers[layer] if r is reader]
                if names:
                    read[reader] = reader.read(names)
            tensors = {name: t for part in read.values() for name, t in part.items()}
            try:
                groups = rule(tensors, config)
            except (ValueError, RuntimeError, KeyError, TypeError) as error:
                raise CheckpointError(
                    f"{path}: layer {layer}: weights do not fit family {family!r}: {error}"
                ) from error
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
    report: dict[str, int] | None = None,
    spectra: str = "exact",
) -> dict[str, float]:
    """The 14 metrics of the checkpoint at ``path`` by the fast exact path.

    model: the setting's family (None: config.json's model_type); params: the task
    hyperparameters when the family is a task. Transformer families stream layer by layer.
    spectra: ``exact`` or the opt-in ``sketched`` estimates (trainmap.metrics.sketched).
    """
    config = model_config(path)
    family = model if model is not None else config.get("model_type")
    if family in LAYER_PATTERNS:
        family_rule(family, f"{path}: model")
        parts = layer_parts(path, family, config)
        return metrics_of_layers(parts, device, threads, report, spectra=spectra)
    groups = weight_groups(path, model, params)  # a task family, or an unknown one (refused)
    return compute_metrics_fast(groups, device, threads, spectra)


def series_metrics_fast(
    locations: Mapping[int, str],
    hub: bool,
    model: str | None,
    params: Mapping[str, Any],
    device: torch.device,
    threads: int = 1,
    spectra: str = "exact",
) -> pd.DataFrame:
    """``trainmap.checkpoints.read.series_metrics`` by the fast exact path: ``step`` and the 14
    metrics of every checkpoint of one seed, in step order, one checkpoint (of a
    transformer family: one layer) in memory at a time."""
    rows = []
    start = time.perf_counter()
    for done, (step, location) in enumerate(sorted(locations.items()), start=1):
        tick, cpu = time.perf_counter(), time.process_time()
        path = hub_snapshot(location) if hub else Path(location)
        report: dict[str, int] = {}
        rows.append(
            {
                "step": step,
                **checkpoint_metrics(path, model, params, device, threads, report, spectra),
            }
        )
        elapsed = time.perf_counter() - start
        log.info(
            "checkpoint %d/%d step %d (%s): %.2fs (%.2f CPU-s), %s matrices, %s by SVD; "
            "%.1fs elapsed, ~%.1fs left",
            done, len(locations), step, location, time.perf_counter() - tick,
            time.process_time() - cpu, report.get("matrices", "?"),
            report.get("svd_fallbacks", "?"), elapsed,
            elapsed / done * (len(locations) - done),
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["step", *METRIC_COLUMNS])
