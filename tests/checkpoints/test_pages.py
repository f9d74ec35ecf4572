"""Handing back the pages of a memory-mapped .bin checkpoint (trainmap.checkpoints.pages)."""

import sys
from pathlib import Path

import pytest
import torch

from trainmap.checkpoints.pages import MappedFile, private_mappings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/maps, madvise")


def resident_kib(ranges: list[tuple[int, int]]) -> int:
    """Rss of this process's mappings starting at the given addresses (/proc/self/smaps)."""
    starts, total, inside = {start for start, _ in ranges}, 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):  # a mapping's first line
            inside = int(head.split("-")[0], 16) in starts
        elif inside and head == "Rss:":
            total += int(line.split()[1])
    return total


@pytest.fixture
def saved(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {f"layer.{i}.weight": torch.randn(256, 1024, generator=gen) for i in range(4)}
    file = tmp_path / "pytorch_model.bin"
    torch.save(tensors, file)
    return file, tensors


def test_release_drops_the_pages_and_keeps_the_values(saved):
    file, want = saved
    mapped = torch.load(file, weights_only=True, mmap=True)
    pages = MappedFile(file)
    assert pages.ranges
    assert sum(float(t.sum()) for t in mapped.values()) == pytest.approx(
        sum(float(t.sum()) for t in want.values())
    )  # every page read: resident
    before = resident_kib(pages.ranges)
    assert before >= 4 * 1024  # 4 MiB of weights
    dropped = pages.release(mapped.values())
    assert dropped >= 4 * 2**20 - 8 * 4096  # all but the partial pages at the ends
    assert resident_kib(pages.ranges) <= before - 4000
    for name, t in want.items():  # paged in again from the file
        assert torch.equal(mapped[name], t)


def test_release_leaves_memory_outside_the_files_mapping_alone(saved):
    file, _ = saved
    mapped = torch.load(file, weights_only=True, mmap=True)
    pages = MappedFile(file)
    ordinary = torch.arange(2**20, dtype=torch.float32)  # anonymous memory: DONTNEED zeroes it
    assert pages.release([ordinary, ordinary[::2]]) == 0
    assert torch.equal(ordinary, torch.arange(2**20, dtype=torch.float32))
    del mapped


def test_a_symlinked_file_finds_its_mapping_and_an_unmapped_file_none(saved, tmp_path):
    file, _ = saved
    link = tmp_path / "snapshot.bin"  # as a hub snapshot links to its blob
    link.symlink_to(file)
    assert private_mappings(link) == []
    mapped = torch.load(link, weights_only=True, mmap=True)
    assert private_mappings(link) == private_mappings(file) != []
    assert MappedFile(tmp_path / "missing.bin").release(mapped.values()) == 0
