"""Identifiers: random, prefixed by kind, safe to show."""

from __future__ import annotations

import secrets


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(10)}"


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"
