"""modular_addition's config keys: the modulus p, the share of pairs trained on, the
transformer's sizes, and the grokking defaults of METHOD.md section 7 (AdamW, weight
decay 1, 10,000 epochs).

No torch here: every Snakemake start validates these keys.
"""

from dataclasses import dataclass
from typing import ClassVar

from trainmap.tasks.params import AT_LEAST_ONE, Range, TrainingParams


@dataclass(frozen=True)
class ModularAdditionParams(TrainingParams):
    """modular_addition: (a + b) mod p with a one-layer transformer."""

    p: int = 113
    train_fraction: float = 0.3
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    layer_norm: bool = False
    lr: float = 1e-3
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 2048
    epochs: int = 10000
    eval_every: int = 10

    RANGES: ClassVar[dict[str, Range]] = {
        "p": Range(2),
        "train_fraction": Range(0, 1, low_open=True, high_open=True),
        "d_model": AT_LEAST_ONE,
        "n_heads": AT_LEAST_ONE,
        "d_head": AT_LEAST_ONE,
        "d_mlp": AT_LEAST_ONE,
    }

    def train_examples(self) -> int:
        return round(self.train_fraction * self.p * self.p)  # as task.py's make_data splits

    def relations(self) -> list[tuple[str, str]]:
        pairs = self.p * self.p
        n_train = round(self.train_fraction * pairs)
        if not 1 <= n_train < pairs:
            return [
                (
                    "train_fraction",
                    f"{self.train_fraction!r} of the {pairs} pairs leaves {n_train} to train "
                    f"and {pairs - n_train} to evaluate; both need at least 1",
                )
            ]
        return []
