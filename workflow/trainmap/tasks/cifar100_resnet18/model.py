"""torchvision's ResNet18 shaped for 32x32 images (METHOD.md section 7), with switches.

The paper's CIFAR-100 model: a 3x3 stride-1 stem and no max-pool, 100 classes. The
"destabilized" setting removes batch norm (no normalisation layer at all: torchvision's
``norm_layer`` becomes Identity) and residual connections (blocks without the skip path
and without their 1x1 downsampling convs). Normalisation of the input images is part of
the model (fixed CIFAR-100 channel statistics), so training and evaluation feed the same
uint8 or float pixels in [0, 255].
"""

import math

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from trainmap.metrics.weights import WeightGroups

# CIFAR-100 training-split channel means and SDs, on pixels scaled to [0, 1].
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


class PlainBlock(BasicBlock):
    """torchvision's BasicBlock without its skip path: relu(bn2(conv2(relu(bn1(conv1 x)))))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


def no_norm(channels: int) -> nn.Module:
    """The ``norm_layer`` of a model without batch norm: nothing at all."""
    return nn.Identity()


class CifarResNet18(ResNet):
    """ResNet18 for (b, 3, 32, 32) pixels in [0, 255] -> (b, n_classes) logits.

    State-dict names are torchvision's resnet18's (``conv1.weight``, ``layer1.0.conv1
    .weight``, ``fc.weight``, ...), so the weights read like any ResNet18's.
    """

    def __init__(self, n_classes: int = 100, batch_norm: bool = True, residual: bool = True):
        block = BasicBlock if residual else PlainBlock
        super().__init__(block, [2, 2, 2, 2], n_classes, norm_layer=None if batch_norm else no_norm)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.maxpool = nn.Identity()
        if not residual:
            for block in self.blocks():
                block.downsample = None  # no skip path: its projection has no use
        mean = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1) * 255
        std = torch.tensor(CIFAR100_STD).view(1, 3, 1, 1) * 255
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

    def blocks(self) -> list[BasicBlock]:
        return [m for m in self.modules() if isinstance(m, BasicBlock)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward((x.float() - self.pixel_mean) / self.pixel_std)

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        """torchvision's init drawn from ``gen``: Kaiming-normal (fan_out) convs, unit/zero
        batch-norm affine parameters and fresh running statistics, and the default
        nn.Linear init for the classifier."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=gen
                )
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.kaiming_uniform_(self.fc.weight, a=math.sqrt(5), generator=gen)
        bound = 1 / math.sqrt(self.fc.in_features)
        nn.init.uniform_(self.fc.bias, -bound, bound, generator=gen)

    def weight_groups(self) -> WeightGroups:
        """METHOD.md: 3x3 conv kernels give l1, l2, code_sparsity per kernel slice; the
        final Linear every matrix metric; pooled weights = every conv kernel (1x1
        downsampling ones included) and the Linear weight; biases = the Linear bias."""
        convs = [m.weight for m in self.modules() if isinstance(m, nn.Conv2d)]
        return WeightGroups(
            matrices=[self.fc.weight],
            kernels=[w for w in convs if w.shape[-2:] == (3, 3)],
            weights=[*convs, self.fc.weight],
            biases=[self.fc.bias],
        )
