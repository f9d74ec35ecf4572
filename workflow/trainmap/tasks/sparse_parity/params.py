"""sparse_parity's config keys: the bits, the MLP's width, the data sizes, and the
parity task's own training defaults (SGD, lr 0.1, 300 epochs).

Torch-free, like every task's params module: config validation imports it.
"""

from dataclasses import dataclass
from typing import ClassVar

from trainmap.tasks.params import AT_LEAST_ONE, Range, TrainingParams


@dataclass(frozen=True)
class SparseParityParams(TrainingParams):
    """sparse_parity: the product of the first k of n_bits random +/-1 bits."""

    n_bits: int = 40
    k: int = 3
    hidden: int = 128
    n_train: int = 1000
    n_eval: int = 100
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 300
    eval_every: int = 10

    RANGES: ClassVar[dict[str, Range]] = {
        "n_bits": AT_LEAST_ONE,
        "k": AT_LEAST_ONE,
        "hidden": AT_LEAST_ONE,
        "n_train": AT_LEAST_ONE,
        "n_eval": AT_LEAST_ONE,
    }

    def train_examples(self) -> int:
        return self.n_train

    def relations(self) -> list[tuple[str, str]]:
        if self.k > self.n_bits:
            return [("k", f"{self.k} exceeds n_bits ({self.n_bits}); allowed: 1 .. n_bits")]
        return []
