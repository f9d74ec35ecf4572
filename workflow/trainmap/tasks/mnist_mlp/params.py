"""mnist_mlp's config keys (with ImageParams' data_root, download, eval subsets): the
hidden widths, and the offline example's training set drawn from the test split.

Torch-free (config validation).
"""

from dataclasses import dataclass
from typing import ClassVar

from trainmap.tasks import data_files
from trainmap.tasks.params import AT_LEAST_ONE, ImageParams, Range


@dataclass(frozen=True)
class MnistMlpParams(ImageParams):
    """mnist_mlp: an MLP 784-hidden...-10 on flattened MNIST digits."""

    hidden: tuple[int, ...] = (800,)
    # > 0: only the 10k test images are read (the offline example): this many of them,
    # a fixed seeded draw, are the training split and the rest the test split.
    train_from_test: int = 0

    RANGES: ClassVar[dict[str, Range]] = {
        "hidden": AT_LEAST_ONE,
        "train_from_test": Range(0, data_files.MNIST_TEST_SIZE, high_open=True),
    }

    def train_examples(self) -> int:
        return self.train_from_test or data_files.MNIST_TRAIN_SIZE

    def dataset_files(self) -> dict[str, list[str]]:
        splits = ("t10k",) if self.train_from_test else ("train", "t10k")
        return data_files.mnist_files(splits)
