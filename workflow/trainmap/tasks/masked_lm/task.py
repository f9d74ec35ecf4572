"""Masked language modelling with a BERT encoder trained from scratch.

The corpus (``corpus``) is split into training lines and a held-out tail
(``eval_fraction``), tokenised with the setting's WordPiece tokenizer (``tokenizer``: the
file rule train_tokenizer writes, a file or hub name from the config, or when empty one
trained here the same way), and cut
into blocks ``[CLS] <max_length - 2 tokens> [SEP]`` of the concatenated token stream.
Training batches are masked the standard way (BERT): each non-special token is chosen with
probability ``mask_prob``; of those, 80% become [MASK], 10% a random non-special token,
10% stay; the loss and accuracy are over chosen tokens. Draws come from the run's batch
generator. The eval split (``n_eval`` held-out blocks) and the train-loss subset
(``n_train_eval`` training blocks) are masked once with fixed seeded draws shared by all
seeds: masked-token accuracy and loss on the same tokens at every checkpoint.
"""

import torch
from torch import nn

from trainmap.tasks.base import Splits, Task
from trainmap.tasks.data_files import SPECIAL_TOKENS
from trainmap.tasks.images import fixed_subset, subset_generator
from trainmap.tasks.masked_lm.corpus import (
    canonical_ids,
    load_tokenizer,
    read_lines,
    split_lines,
    train_tokenizer,
)
from trainmap.tasks.masked_lm.params import MaskedLMParams

NAME = "masked_lm"
N_SPECIAL = len(SPECIAL_TOKENS)
CLS_ID, SEP_ID, MASK_ID = (SPECIAL_TOKENS.index(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
IGNORE = -100  # label of a token that is not scored (cross_entropy's ignore_index)


def blocks(tokenizer, lines: list[str], max_length: int) -> torch.Tensor:
    """(n, max_length) int64: the lines' tokens concatenated and cut into [CLS] ... [SEP]
    blocks of the model's ids (``canonical_ids``); the tail that does not fill a block is
    dropped."""
    width = max_length - 2
    ids = [i for enc in tokenizer.encode_batch(lines, add_special_tokens=False) for i in enc.ids]
    n = len(ids) // width
    lookup = torch.tensor(canonical_ids(tokenizer), dtype=torch.int64)
    body = lookup[torch.tensor(ids[: n * width], dtype=torch.int64)].view(n, width)
    return torch.cat([torch.full((n, 1), CLS_ID), body, torch.full((n, 1), SEP_ID)], dim=1)


def mask_tokens(p: MaskedLMParams, ids: torch.Tensor, gen: torch.Generator):
    """BERT's masking of ``ids`` (b, L): (inputs, labels), labels IGNORE where not chosen.

    Three draws of shape (b, L) from ``gen`` on the CPU (choose, kind, random id), moved to
    ids' device; special tokens are never chosen.
    """
    choose = torch.rand(ids.shape, generator=gen).to(ids.device)
    kind = torch.rand(ids.shape, generator=gen).to(ids.device)
    random_ids = torch.randint(N_SPECIAL, p.vocab_size, ids.shape, generator=gen).to(ids.device)
    chosen = (choose < p.mask_prob) & (ids >= N_SPECIAL)
    labels = torch.where(chosen, ids, IGNORE)
    inputs = torch.where(chosen & (kind < 0.8), MASK_ID, ids)
    inputs = torch.where(chosen & (kind >= 0.9), random_ids, inputs)
    return inputs, labels


def make_data(p: MaskedLMParams, gen: torch.Generator) -> Splits:
    """Training blocks (x = y = token ids; masked per batch) and the fixed-mask splits.

    ``gen`` is unused: the data and the fixed masks are the same for every seed.
    """
    train_lines, eval_lines = split_lines(read_lines(p.corpus), p.eval_fraction)
    if p.tokenizer:
        tokenizer = load_tokenizer(p.tokenizer)
    else:
        tokenizer = train_tokenizer(train_lines, p.vocab_size)
    if tokenizer.get_vocab_size() > p.vocab_size:
        raise ValueError(
            f"tokenizer {p.tokenizer!r} has {tokenizer.get_vocab_size()} tokens, more than "
            f"vocab_size {p.vocab_size}"
        )
    train = blocks(tokenizer, train_lines, p.max_length)
    held_out = blocks(tokenizer, eval_lines, p.max_length)
    if p.n_train:
        train = train[: p.n_train]
    if len(train) == 0 or len(held_out) == 0:
        raise ValueError(f"corpus {p.corpus!r} is too short for blocks of {p.max_length}")
    held_out = held_out[fixed_subset(len(held_out), p.n_eval, subset_generator(NAME, "eval"))]
    probe = train[fixed_subset(len(train), p.n_train_eval, subset_generator(NAME, "train"))]
    eval_x, eval_y = mask_tokens(p, held_out, subset_generator(NAME, "eval_mask"))
    probe_x, probe_y = mask_tokens(p, probe, subset_generator(NAME, "train_mask"))
    return Splits(train, train, eval_x, eval_y, probe_x=probe_x, probe_y=probe_y)


def make_model(p: MaskedLMParams) -> nn.Module:
    from trainmap.tasks.masked_lm.model import (  # transformers only where it runs
        MaskedLMBert,
        bert_config,
    )

    config = bert_config(p.vocab_size, p.max_length, p.layers, p.hidden, p.heads, p.intermediate)
    return MaskedLMBert(config)


def mask_batch(p: MaskedLMParams, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """A training batch's masking (``y`` is x's token ids; the labels replace it)."""
    return mask_tokens(p, x, gen)


def masked_loss(out, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the chosen tokens; out: MaskedLMOutput, logits (b, L, V)."""
    logits = out.logits
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
    )


def masked_accuracy(out, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of chosen tokens whose argmax prediction is the original token."""
    scored = labels != IGNORE
    return ((out.logits.argmax(-1) == labels) & scored).sum() / scored.sum()


def masked_count(labels: torch.Tensor) -> torch.Tensor:
    return (labels != IGNORE).sum()


MASKED_LM = Task(
    name=NAME,
    params=MaskedLMParams,
    make_data=make_data,
    make_model=make_model,
    loss=masked_loss,
    accuracy=masked_accuracy,
    train_batch=mask_batch,
    count=masked_count,
)
