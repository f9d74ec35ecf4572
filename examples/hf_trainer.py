"""Map your own training, Hugging Face Trainer: a tiny BertForMaskedLM pretrained from a
config (no download) on a synthetic corpus, 4 seeds, recorded by a callback.

    python examples/hf_trainer.py runs/bert
"""

import sys

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

from trainmap.record import HFCallback

VOCAB, LENGTH, MASK = 40, 16, 3


def corpus(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Each sequence repeats one token: a masked token is any of its unmasked ones."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, 1), generator=gen).expand(n, LENGTH)
    masked = torch.rand(n, LENGTH, generator=gen) < 0.15
    labels = torch.where(masked, ids, -100)
    inputs = torch.where(masked, MASK, ids)
    return [{"input_ids": inputs[i], "labels": labels[i]} for i in range(n)]


def accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    scored = labels != -100
    return {"accuracy": float(np.mean(logits.argmax(-1)[scored] == labels[scored]))}


def train(directory: str, seed: int) -> None:
    torch.manual_seed(seed)  # BERT's init
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=LENGTH)  # fmt: skip
    args = TrainingArguments(
        output_dir=f"{directory}/trainer",
        seed=seed,  # the callback records into seed<seed>/
        max_steps=60,
        per_device_train_batch_size=32,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=5,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=BertForMaskedLM(config),
        args=args,
        train_dataset=corpus(1024, 1000 + seed),
        eval_dataset=corpus(256, 0),
        compute_metrics=accuracy,
        callbacks=[HFCallback(directory)],
    )
    trainer.train()


if __name__ == "__main__":
    for seed in range(4):
        train(sys.argv[1] if len(sys.argv) > 1 else "runs/bert", seed)
