"""Identifiers: random, prefixed by kind, safe to show."""

from __future__ import annotations

import os
import random
import secrets

# Request ids are neither secrets nor keys: 96 bits from a generator seeded once from the OS make
# collisions as unlikely as token_hex's, without a getrandom() system call in every request.
_request_ids = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _request_ids.seed(secrets.randbits(128)))  # no shared stream


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(10)}"


def new_request_id() -> str:
    return f"req_{_request_ids.getrandbits(96):024x}"
