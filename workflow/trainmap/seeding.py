"""Explicit, named random streams derived from a run's seed.

Every random draw of a run (init, data, data order) comes from its own
``torch.Generator`` so that adding a draw to one stream never shifts another, and so
that the streams can be saved and restored with the rest of the run's state.
"""

import hashlib

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (stable across processes and machines)."""
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))
