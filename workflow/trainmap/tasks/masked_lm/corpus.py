"""The masked LM's text: a corpus read with ``datasets`` and a WordPiece tokenizer.

Kept free of torch: rule train_tokenizer builds the tokenizer of a setting once (a
``tokenizers`` JSON file, results/<setting>/tokenizer.json) and every training job of the
setting reads it. A local corpus (a .txt file) goes through ``datasets``' "text" builder
with its cache in a temporary directory (nothing is written beside the data or into the
repository); another value is a hub dataset name, read with the standard hub cache where
a network exists.
"""

import tempfile
from pathlib import Path

from trainmap.io.atomic import atomic_path
from trainmap.tasks.data_files import SPECIAL_TOKENS, is_local_corpus, is_local_file


def read_lines(corpus: str) -> list[str]:
    """The corpus's non-blank lines, in file order (a hub dataset: its train split's
    ``text`` column)."""
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()  # a bar per read would clutter every training log
    if is_local_corpus(corpus):
        with tempfile.TemporaryDirectory(prefix="trainmap-datasets-") as cache:
            data = load_dataset(
                "text", data_files={"train": corpus}, split="train", cache_dir=cache
            )
            texts = list(data["text"])
    else:
        texts = list(load_dataset(corpus, split="train")["text"])
    return [line for line in texts if line.strip()]


def split_lines(lines: list[str], eval_fraction: float) -> tuple[list[str], list[str]]:
    """Training lines and held-out lines: the last ``eval_fraction`` of the corpus (a
    contiguous tail, so no passage is split between training and evaluation)."""
    n_eval = max(1, round(eval_fraction * len(lines)))
    if n_eval >= len(lines):
        raise ValueError(f"corpus has {len(lines)} lines: too few to hold out {eval_fraction:g}")
    return lines[:-n_eval], lines[-n_eval:]


def train_tokenizer(lines: list[str], vocab_size: int):
    """A lower-casing BERT-style WordPiece tokenizer trained on ``lines``.

    Special tokens (data_files.SPECIAL_TOKENS) take ids 0..4, the other pieces follow in
    sorted order; the vocabulary has at most ``vocab_size`` entries (fewer when the corpus
    has fewer distinct pieces).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    # The trainer numbers equal pieces in hash-map order, which changes from process to
    # process; sorted ids make the same corpus give the same file (and the same model).
    return specials_first(tokenizer, sorted(set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS)))


def specials_first(tokenizer, pieces: list[str]):
    """``tokenizer`` with its WordPiece vocabulary numbered SPECIAL_TOKENS first (ids
    0..4, as the trainer adds them), then ``pieces`` in the order given."""
    from tokenizers import models

    vocab = {piece: i for i, piece in enumerate([*SPECIAL_TOKENS, *pieces])}
    tokenizer.model = models.WordPiece(vocab, unk_token="[UNK]")
    return tokenizer


def build_tokenizer(corpus: str, eval_fraction: float, vocab_size: int, path: str | Path):
    """Train the tokenizer on the corpus's training lines and save it to ``path``."""
    train_lines, _ = split_lines(read_lines(corpus), eval_fraction)
    tokenizer = train_tokenizer(train_lines, vocab_size)
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))


def load_tokenizer(name: str):
    """A tokenizers JSON file (``name`` ends in .json or exists), else a pretrained
    tokenizer from the hub (e.g. ``bert-base-uncased``; needs a network).

    It must be a BERT-style WordPiece tokenizer with the special tokens SPECIAL_TOKENS
    (``canonical_ids`` maps its ids so that these come first).
    """
    from tokenizers import Tokenizer, models

    if is_local_file(name, ".json"):
        tokenizer = Tokenizer.from_file(name)
    else:
        try:
            tokenizer = Tokenizer.from_pretrained(name)
        except Exception as error:  # the hub client raises many kinds; all mean the same
            raise ValueError(
                f"tokenizer {name!r}: no such file, and no pretrained tokenizer of that name "
                f"could be fetched from the hub ({error})"
            ) from error
    missing = [token for token in SPECIAL_TOKENS if tokenizer.token_to_id(token) is None]
    if missing or not isinstance(tokenizer.model, models.WordPiece):
        raise ValueError(
            f"tokenizer {name!r}: a WordPiece tokenizer with the special tokens "
            f"{list(SPECIAL_TOKENS)} is needed (missing: {missing or 'none'}, model "
            f"{type(tokenizer.model).__name__})"
        )
    return tokenizer


def canonical_ids(tokenizer) -> list[int]:
    """The model's id of each of the tokenizer's ids: SPECIAL_TOKENS take 0..4 (the
    masking relies on them), every other id keeps its order after them. The identity for
    ``train_tokenizer``'s tokenizers; a pretrained one (bert-base-uncased has [PAD] 0,
    [UNK] 100, [CLS] 101, ...) is renumbered."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    special = [vocab[token] for token in SPECIAL_TOKENS]
    others = sorted(set(vocab.values()) - set(special))
    mapping = [0] * (max(vocab.values()) + 1)
    for new, old in enumerate([*special, *others]):
        mapping[old] = new
    return mapping
