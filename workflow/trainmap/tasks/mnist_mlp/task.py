"""MNIST digits with an MLP 784-800-10 (METHOD.md section 7), data via torchvision.

Inputs are the flattened pixels scaled to [0, 1] as torchvision's ToTensor gives them,
with no mean/std normalisation. The data is the same for every seed; a seed changes the
init and the order of the batches. At each checkpoint the eval loss and accuracy are
scored on ``n_eval`` test images and the train loss and accuracy on ``n_train_eval``
training images, fixed seeded subsets shared by all seeds (0 = the whole split).
"""

import torch
from torch import nn

from trainmap.tasks.base import Splits, Task, argmax_accuracy
from trainmap.tasks.images import download_mnist, fixed_subset, read_mnist, subset_generator
from trainmap.tasks.mlp import MLP
from trainmap.tasks.mnist_mlp.params import MnistMlpParams

NAME = "mnist_mlp"
N_PIXELS, N_CLASSES = 28 * 28, 10


def flatten(images: torch.Tensor) -> torch.Tensor:
    """(n, 28, 28) uint8 -> (n, 784) float32 in [0, 1]."""
    return images.reshape(len(images), -1).float() / 255


def load_splits(p: MnistMlpParams) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, eval_x, eval_y as read from disk (before the eval subsets).

    ``train_from_test`` > 0 reads only the 10k test images and splits them with a fixed
    seeded permutation: that many for training, the rest for evaluation.
    """
    if p.download:
        download_mnist(p.data_root)
    if not p.train_from_test:
        return (*read_mnist(p.data_root, "train"), *read_mnist(p.data_root, "t10k"))
    images, labels = read_mnist(p.data_root, "t10k")
    order = torch.randperm(len(images), generator=subset_generator(NAME, "train_from_test"))
    train, held_out = order[: p.train_from_test], order[p.train_from_test :]
    return images[train], labels[train], images[held_out], labels[held_out]


def make_data(p: MnistMlpParams, gen: torch.Generator) -> Splits:
    """The splits as float pixels (n, 784) and labels (n,); ``gen`` is unused (the data
    does not depend on the seed)."""
    train_x, train_y, eval_x, eval_y = load_splits(p)
    kept = fixed_subset(len(eval_x), p.n_eval, subset_generator(NAME, "eval"))
    probe = fixed_subset(len(train_x), p.n_train_eval, subset_generator(NAME, "train"))
    return Splits(
        flatten(train_x),
        train_y,
        flatten(eval_x[kept]),
        eval_y[kept],
        probe_x=flatten(train_x[probe]),
        probe_y=train_y[probe],
    )


def make_model(p: MnistMlpParams) -> MLP:
    return MLP([N_PIXELS, *p.hidden, N_CLASSES])


MNIST_MLP = Task(
    name=NAME,
    params=MnistMlpParams,
    make_data=make_data,
    make_model=make_model,
    loss=nn.functional.cross_entropy,
    accuracy=argmax_accuracy,
)
