"""masked_lm's config keys: the corpus and its held-out tail, the tokenizer, the BERT
encoder's sizes, masking, and what a checkpoint scores.

Imported by config validation, so without torch or transformers.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from trainmap.errors import ConfigError
from trainmap.tasks import data_files
from trainmap.tasks.params import AT_LEAST_ONE, NON_NEGATIVE, Range, TrainingParams


@dataclass(frozen=True)
class MaskedLMParams(TrainingParams):
    """masked_lm: a BERT encoder trained from scratch with masked-token prediction."""

    corpus: str = "data/corpus.txt"  # a local text file (.txt), else a hub dataset name
    eval_fraction: float = 0.1  # the corpus's last lines held out for evaluation
    tokenizer: str = ""  # a JSON file or hub name; "" = trained by rule train_tokenizer
    vocab_size: int = 8192
    max_length: int = 128
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    mask_prob: float = 0.15
    n_train: int = 0  # training sequences, the first n; 0 = all
    n_eval: int = 512  # held-out sequences scored per checkpoint; 0 = all
    n_train_eval: int = 512  # fixed seeded subset of the training sequences, likewise
    eval_batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 1
    eval_every: int = 50
    eval_unit: str = "step"

    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("vocab_size", "layers", "hidden", "heads", "intermediate"), AT_LEAST_ONE),
        "eval_batch_size": AT_LEAST_ONE,
        "max_length": Range(3),  # [CLS] text [SEP]
        **dict.fromkeys(("n_train", "n_eval", "n_train_eval"), NON_NEGATIVE),
        "eval_fraction": Range(0, 1, low_open=True, high_open=True),
        "mask_prob": Range(0, 1, low_open=True, high_open=True),
    }

    def relations(self) -> list[tuple[str, str]]:
        problems = []
        if self.hidden % self.heads:
            problems.append(("hidden", f"{self.hidden} is not a multiple of heads ({self.heads})"))
        if self.vocab_size <= len(data_files.SPECIAL_TOKENS):
            n = len(data_files.SPECIAL_TOKENS)
            problems.append(("vocab_size", f"{self.vocab_size} must exceed the {n} special tokens"))
        return problems

    def check(self, where: str) -> None:
        if data_files.is_local_corpus(self.corpus) and not Path(self.corpus).is_file():
            raise ConfigError(
                f"{where}.corpus: no text file {str(Path(self.corpus).resolve())!r} "
                "(a local corpus ends in .txt or exists; other values are hub dataset names)"
            )
        local = data_files.is_local_file(self.tokenizer, ".json")
        if self.tokenizer and local and not Path(self.tokenizer).is_file():
            raise ConfigError(
                f"{where}.tokenizer: no file {str(Path(self.tokenizer).resolve())!r} (a "
                "tokenizer file ends in .json or exists; other values are hub tokenizer names)"
            )
