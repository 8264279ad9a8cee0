"""Replicas sharing a database must share the key-hashing secret (TOLLWAY_SECRET).

Keys are stored as HMAC(secret, key): a process with another secret finds none of them and answers
401 to every key the others made, silently. So the database records a fingerprint of the secret
the first process used, and a process whose secret does not match refuses to start.

The fingerprint is HMAC(secret, a fixed label): one-way, it reveals no more about the secret than
the key hashes beside it. The label starts with a NUL byte, which no key sent in an HTTP header can
hold, so the fingerprint is never the hash of a key.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.settings import ConfigurationError
from tollway.store.server_state import write_once

FINGERPRINT = "secret_fingerprint"  # its row in server_state
_LABEL = b"\x00tollway: fingerprint of the key-hashing secret, v1"


def fingerprint(pepper: bytes) -> str:
    return hmac.new(pepper, _LABEL, hashlib.sha256).hexdigest()


async def check_secret(engine: AsyncEngine, pepper: bytes) -> None:
    """Record this secret's fingerprint if the database has none; ConfigurationError if it has another."""
    mine = fingerprint(pepper)
    stored = await write_once(engine, FINGERPRINT, mine)  # processes starting together: one wins
    if not hmac.compare_digest(stored, mine):
        raise ConfigurationError(
            "The key-hashing secret differs from the one this database's keys were made with, so "
            "every key would be refused (401). Set TOLLWAY_SECRET to the value the other replicas "
            "use. Without TOLLWAY_SECRET a process uses the file TOLLWAY_DATA_DIR/secret: copy that "
            "file's content from the first replica into TOLLWAY_SECRET on every replica."
        )
