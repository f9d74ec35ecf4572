"""Modular addition (a + b) mod p with a one-layer transformer (METHOD.md section 7)."""

import torch
from torch import nn

from trainmap.tasks.base import Splits, Task, argmax_accuracy
from trainmap.tasks.modular_addition.model import OneLayerTransformer
from trainmap.tasks.modular_addition.params import ModularAdditionParams


def make_data(p: ModularAdditionParams, gen: torch.Generator) -> Splits:
    """All p^2 pairs as tokens (a, b, '=') with '=' = p; the train subset drawn per seed."""
    a, b = torch.cartesian_prod(torch.arange(p.p), torch.arange(p.p)).unbind(1)
    tokens = torch.stack([a, b, torch.full_like(a, p.p)], dim=1)
    labels = (a + b) % p.p
    order = torch.randperm(p.p * p.p, generator=gen)
    n_train = p.train_examples()
    train, held_out = order[:n_train], order[n_train:]
    return Splits(tokens[train], labels[train], tokens[held_out], labels[held_out])


def make_model(p: ModularAdditionParams) -> OneLayerTransformer:
    return OneLayerTransformer(
        vocab=p.p + 1,
        n_classes=p.p,
        ctx=3,
        d_model=p.d_model,
        n_heads=p.n_heads,
        d_head=p.d_head,
        d_mlp=p.d_mlp,
        layer_norm=p.layer_norm,
    )


def stacked_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of S seeds at once: logits (S, B, C), y (S, B) -> (S,)."""
    per_example = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return per_example.view(y.shape).mean(-1)


MODULAR_ADDITION = Task(
    name="modular_addition",
    params=ModularAdditionParams,
    make_data=make_data,
    make_model=make_model,
    loss=nn.functional.cross_entropy,
    accuracy=argmax_accuracy,
    stacked_loss=stacked_cross_entropy,
)
