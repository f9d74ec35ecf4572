"""Image data sets as tensors, loaded once per run, and augmentation drawn from a generator.

Each split is read whole into a uint8 tensor (CIFAR-100's training split is 150 MB), so
batches are index lookups on the run's device and every random draw (the order, the crops
and flips) comes from the run's own generators: a seed reproduces bit for bit on a CPU and
a GPU is never left waiting for a loader. torchvision is imported inside the loaders,
which keeps ``import trainmap.tasks.registry`` fast for the tasks that do not need it.
"""

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from trainmap.seeding import derive_seed
from trainmap.tasks import data_files


def subset_generator(task: str, split: str) -> torch.Generator:
    """The generator of a task's fixed subsets: the same draw for every seed of a setting."""
    return torch.Generator().manual_seed(derive_seed(task, "subset", split))


def fixed_subset(n_total: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Sorted indices of ``n`` of ``n_total`` examples drawn without replacement; all when
    ``n`` is 0 or at least ``n_total``."""
    if n == 0 or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=gen)[:n].sort().values


def read_mnist(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST split ``train`` or ``t10k``: images (n, 28, 28) uint8, labels (n,) int64.

    Files are found with ``data_files.mnist_files`` (torchvision's layout or plain IDX
    files, gzipped or not) and parsed by torchvision's own IDX readers; a gzipped file is
    decompressed into a temporary directory first (the readers take plain files).
    """
    from torchvision.datasets.mnist import read_image_file, read_label_file
    from torchvision.datasets.utils import extract_archive

    found = data_files.require(data_files.mnist_files((split,)), root, "data_root")
    with tempfile.TemporaryDirectory(prefix="trainmap-mnist-") as tmp:

        def plain(path: Path) -> str:
            return extract_archive(str(path), tmp) if path.suffix == ".gz" else str(path)

        images = read_image_file(plain(found[f"{split}-images-idx3-ubyte"]))
        labels = read_label_file(plain(found[f"{split}-labels-idx1-ubyte"]))
    return images, labels


def download_mnist(root: str | Path) -> None:
    """Fetch MNIST's four files into torchvision's layout under ``root`` (a no-op when
    they are there)."""
    from torchvision.datasets import MNIST

    with downloading("MNIST", root):
        MNIST(str(root), train=True, download=True)


@contextmanager
def downloading(name: str, root: str | Path) -> Iterator[None]:
    """Hold ``<root>/.trainmap-download.lock`` while torchvision downloads, and turn a
    failed download (no network, a mirror down) into one error naming the data set and
    the root instead of torchvision's traceback.

    The lock makes the training jobs of a setting (often dozens at once, and settings that
    share a data_root) download one after another: the first fetches the files, the others
    find them in place (torchvision checks before it downloads).
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    # A lock, not an output: opened without truncating, never renamed into place.
    lock = os.open(Path(root) / ".trainmap-download.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        except (OSError, RuntimeError) as error:
            raise RuntimeError(
                f"data_root {str(Path(root).resolve())!r}: downloading {name} failed "
                f"({error}). Where jobs have no network, fetch the files elsewhere, put them "
                "under data_root and set download: false."
            ) from error
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


def read_cifar100(root: str | Path, train: bool, download: bool):
    """CIFAR-100 split via torchvision: images (n, 3, 32, 32) uint8, labels (n,) int64.

    Without ``download`` the files are checked first, so a missing data set is an error
    naming the root and the files, not torchvision's "Dataset not found".
    """
    from torchvision.datasets import CIFAR100

    if download:
        with downloading("CIFAR-100", root):
            CIFAR100(str(root), train=True, download=True)
    data_files.require(data_files.CIFAR100_FILES, root, "data_root")
    data = CIFAR100(str(root), train=train, download=False)
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(data.targets, dtype=torch.int64)


def fake_images(n: int, n_classes: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` torchvision FakeData images (3, 32, 32) uint8 and labels; ``offset`` tells
    splits apart (FakeData seeds each image by its index plus this offset)."""
    from torchvision.datasets import FakeData
    from torchvision.transforms.functional import pil_to_tensor

    data = FakeData(n, (3, 32, 32), n_classes, random_offset=offset)
    pairs = [data[i] for i in range(n)]
    images = torch.stack([pil_to_tensor(image) for image, _ in pairs])
    return images, torch.tensor([int(label) for _, label in pairs], dtype=torch.int64)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after reflect padding, then a random horizontal flip, per image.

    x: (b, c, h, w) images, any dtype (returned as float32, values unchanged). Offsets
    (b, 2) in [0, 2 * pad] and flips (b,) are drawn from ``gen`` on the CPU, then moved
    to x's device.
    """
    b, _, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen).to(x.device)
    flips = torch.rand(b, generator=gen).to(x.device) < 0.5
    padded = torch.nn.functional.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (b, h)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (b, w)
    cols = torch.where(flips[:, None], cols.flip(-1), cols)  # a flip reads columns reversed
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice: the result is (b, h, w, c).
    crops = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()
