"""CIFAR-100 with torchvision's ResNet18 (METHOD.md section 7), data via torchvision.

Training batches get a random crop (reflect padding 4) and a horizontal flip drawn from
the run's batch generator; the model normalises its input itself. The data is the same
for every seed; the checkpoint subsets (``n_eval`` test images, ``n_train_eval`` training
images, unaugmented) are fixed seeded draws shared by all seeds (0 = the whole split).
"""

import torch
from torch import nn

from trainmap.tasks.base import Splits, Task, argmax_accuracy
from trainmap.tasks.cifar100_resnet18.params import Cifar100ResNet18Params
from trainmap.tasks.images import (
    fake_images,
    fixed_subset,
    random_crop_flip,
    read_cifar100,
    subset_generator,
)

NAME = "cifar100_resnet18"
N_CLASSES = 100


def load_splits(p: Cifar100ResNet18Params) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, eval_x, eval_y: images (n, 3, 32, 32) uint8, labels (n,)."""
    if p.fake_images:
        train = fake_images(p.fake_images, N_CLASSES, offset=0)
        return (*train, *fake_images(p.fake_images, N_CLASSES, offset=p.fake_images))
    train = read_cifar100(p.data_root, train=True, download=p.download)
    return (*train, *read_cifar100(p.data_root, train=False, download=False))


def make_data(p: Cifar100ResNet18Params, gen: torch.Generator) -> Splits:
    """uint8 images and int64 labels; ``gen`` is unused (the data is the seed's own)."""
    train_x, train_y, eval_x, eval_y = load_splits(p)
    kept = fixed_subset(len(eval_x), p.n_eval, subset_generator(NAME, "eval"))
    probe = fixed_subset(len(train_x), p.n_train_eval, subset_generator(NAME, "train"))
    return Splits(
        train_x, train_y, eval_x[kept], eval_y[kept], probe_x=train_x[probe], probe_y=train_y[probe]
    )


def make_model(p: Cifar100ResNet18Params) -> nn.Module:
    from trainmap.tasks.cifar100_resnet18.model import (
        CifarResNet18,  # torchvision only where the task runs
    )

    return CifarResNet18(N_CLASSES, batch_norm=p.batch_norm, residual=p.residual)


def augment(p: Cifar100ResNet18Params, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """A training batch's random crops and flips (float pixels in [0, 255])."""
    return random_crop_flip(x, gen), y


CIFAR100_RESNET18 = Task(
    name=NAME,
    params=Cifar100ResNet18Params,
    make_data=make_data,
    make_model=make_model,
    loss=nn.functional.cross_entropy,
    accuracy=argmax_accuracy,
    train_batch=augment,
)
