"""Seeds derived from names, so every random stream of the workflow is explicit.

A run's init, data and data order each get their own generator seeded by
``derive_seed("init", seed)`` and so on, so adding a draw to one stream never shifts
another; HMM splits and restarts derive theirs from the config's ``hmm.seed`` likewise.
"""

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (stable across processes and machines)."""
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
