"""cifar100_resnet18's config keys (with ImageParams'): the two switches of the paper's
destabilised settings (batch_norm, residual) and the FakeData smoke test.

Torch-free (config validation).
"""

from dataclasses import dataclass
from typing import ClassVar

from trainmap.tasks import data_files
from trainmap.tasks.params import NON_NEGATIVE, ImageParams, Range


@dataclass(frozen=True)
class Cifar100ResNet18Params(ImageParams):
    """cifar100_resnet18: torchvision's ResNet18 with a CIFAR stem on CIFAR-100."""

    batch_norm: bool = True
    residual: bool = True
    # > 0: that many torchvision FakeData images per split instead of CIFAR-100 (a smoke
    # test without the download; nothing is read from data_root).
    fake_images: int = 0

    RANGES: ClassVar[dict[str, Range]] = {"fake_images": NON_NEGATIVE}

    def train_examples(self) -> int:
        return self.fake_images or data_files.CIFAR100_TRAIN_SIZE

    def dataset_files(self) -> dict[str, list[str]]:
        return {} if self.fake_images else data_files.CIFAR100_FILES
