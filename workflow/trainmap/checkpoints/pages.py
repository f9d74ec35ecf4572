"""Handing back the resident pages of a memory-mapped ``.bin`` checkpoint, layer by layer.

``torch.load(mmap=True)`` maps the whole file once (privately, ``MAP_PRIVATE``), and every
page a layer's tensors touch stays resident for as long as any tensor of the file lives:
read layer by layer, a BERT-base ``pytorch_model.bin`` ended with all its layers resident
(467 MiB above the torch baseline, 1.12x the file, against 170 MiB with the pages handed
back; BENCHMARKS.md). ``madvise(MADV_DONTNEED)`` drops a range's pages from the process;
for a private file mapping that was never written, the next read pages them in again from
the file (the page cache), so the values cannot change. On anonymous memory it would
zero them instead: ``MappedFile`` only touches addresses inside this file's own private
mapping, as ``/proc/self/maps`` lists it, and does nothing where it cannot tell (not
Linux, no mapping found).
"""

import ctypes
import logging
import mmap
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

PAGE = mmap.PAGESIZE


def private_mappings(file: Path) -> list[tuple[int, int]]:
    """[start, end) of this process's private mappings of ``file`` (matched by device and
    inode, so a symlink such as a hub snapshot's finds its blob); [] where unknown."""
    try:
        stat = os.stat(file)
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}"
    ranges = []
    for line in lines:
        fields = line.split(maxsplit=5)
        # address perms offset dev inode [path]
        if len(fields) < 5 or fields[3] != device or fields[4] != str(stat.st_ino):
            continue
        if not fields[1].endswith("p"):
            continue  # a shared mapping: dropping its pages is safe too, but not ours
        start, end = (int(a, 16) for a in fields[0].split("-"))
        ranges.append((start, end))
    return ranges


def _madvise() -> Callable[[int, int, int], int] | None:
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


class MappedFile:
    """The private mapping of one file that ``torch.load(mmap=True)`` made; ``release``
    drops the pages under given tensors. Build it after the load (the mapping must
    exist) and while its tensors live (the mapping lives as long as they do)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.madvise = _madvise()
        self.ranges = private_mappings(file) if self.madvise is not None else []

    def release(self, tensors: Iterable[torch.Tensor]) -> int:
        """Drop the resident pages wholly under each tensor's storage, where that lies in
        the file's mapping; return the bytes dropped. Values read later are paged in again."""
        dropped = 0
        storages = {(s.data_ptr(), s.nbytes()) for s in (t.untyped_storage() for t in tensors)}
        for start, size in storages:
            low, high = -(-start // PAGE) * PAGE, (start + size) // PAGE * PAGE  # whole pages
            if high <= low or not any(a <= low and high <= b for a, b in self.ranges):
                continue
            if self.madvise(low, high - low, mmap.MADV_DONTNEED) != 0:
                error = ctypes.get_errno()
                log.debug("%s: madvise failed (%s): pages kept", self.file, os.strerror(error))
                continue
            dropped += high - low
        return dropped
