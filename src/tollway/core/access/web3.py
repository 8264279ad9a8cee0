"""Web3 key creation (Venice `api_keys/generate_web3_key`): a signed token, then a wallet signature.

1. GET issues a short-lived HS256 JWT signed with a key derived from the server pepper (5 min).
2. The wallet signs the raw token (EIP-191 personal_sign); POST sends address, signature, token.
3. The token is checked (signature, expiry, single use), the signer recovered with eth-account and
   compared with `address`, and the address must be bound to an account by the operator.
Off unless TOLLWAY_WEB3_KEYS=true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts, server_state, wallet_bindings

TOKEN_TTL_SECONDS = 300
AUDIENCE = "tollway:generate_web3_key"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEADER = {"alg": "HS256", "typ": "JWT"}


def normalize_address(value: str) -> str:
    """A 0x-prefixed 20-byte hex address, lower-cased (bindings compare case-insensitively)."""
    if not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 40-hex-digit wallet address")
    return value.lower()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signing_key(pepper: bytes) -> bytes:
    return hmac.new(pepper, b"tollway-web3-token-v1", hashlib.sha256).digest()


def issue_token(pepper: bytes, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + TOKEN_TTL_SECONDS,
        "nonce": secrets.token_hex(12),
    }
    signing_input = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(claims))}"
    mac = hmac.new(_signing_key(pepper), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _bad_token() -> TollwayError:
    return TollwayError(
        ErrorCode.AUTHENTICATION_FAILED,
        "The token is invalid, expired or already used. GET /api_keys/generate_web3_key for a new one.",
        param="token",
    )


def verify_token(pepper: bytes, token: str, now: float | None = None) -> str:
    """The token's nonce, if the token is ours and unexpired; else 401."""
    try:
        header, payload, mac = token.split(".")
        expected = hmac.new(_signing_key(pepper), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            raise _bad_token()
        claims: dict[str, Any] = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        raise _bad_token() from None
    moment = now if now is not None else time.time()
    if claims.get("aud") != AUDIENCE or not isinstance(claims.get("exp"), int) or claims["exp"] <= moment:
        raise _bad_token()
    return str(claims["nonce"])


def recover_signer(token: str, signature: str) -> str:
    """The lower-cased address that signed `token` (EIP-191 personal_sign); 401 if unreadable."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            raise ValueError("a signature is 65 bytes")
        return str(Account.recover_message(encode_defunct(text=token), signature=raw)).lower()
    except Exception:
        raise TollwayError(
            ErrorCode.AUTHENTICATION_FAILED, "The signature does not verify.", param="signature"
        ) from None


class Wallets:
    """Operator-bound wallet addresses and single-use web3 tokens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def bind(self, account_id: str, address: str) -> dict[str, Any]:
        normalized = normalize_address(address)
        async with self._engine.begin() as conn:
            if (await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))).first() is None:
                raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.")
            row = (
                await conn.execute(select(wallet_bindings).where(wallet_bindings.c.address == normalized))
            ).first()
            if row is None:
                created = utcnow()
                await conn.execute(
                    insert(wallet_bindings).values(
                        address=normalized, account_id=account_id, created_at=created
                    )
                )
            elif row.account_id != account_id:
                raise TollwayError(
                    ErrorCode.CONFLICT, "This address is bound to another account.", param="address"
                )
            else:
                created = as_utc(row.created_at)
        return {
            "object": "wallet_binding",
            "account_id": account_id,
            "address": normalized,
            "created_at": created.isoformat(),
        }

    async def account_of(self, address: str) -> str | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    select(wallet_bindings.c.account_id).where(wallet_bindings.c.address == address.lower())
                )
            ).scalar()
        return None if value is None else str(value)

    async def use_nonce(self, nonce: str) -> None:
        """Each token mints at most one key: its nonce is recorded, and a replay is 401."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(server_state).values(name=f"web3_nonce:{nonce}", value="used"))
        except IntegrityError:
            raise _bad_token() from None
