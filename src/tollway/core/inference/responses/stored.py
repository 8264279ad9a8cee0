"""The Responses API's storage: a response and its input items, per account, sealed, for a TTL.

Off unless TOLLWAY_RESPONSE_STORE_TTL_SECONDS > 0 (then `store` defaults to true, as OpenAI's does).
At rest a row holds only ids, times and `sealed`: the JSON of the input items and the Response,
encrypted and authenticated (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from TOLLWAY_SECRET,
so a copy of the database alone reads no prompt or answer. A row is another account's or past its
`expires_at` reads as absent (the caller answers 404, never the content), and the sweep deletes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.store.tables import stored_responses

JSON = dict[str, Any]
KEY_CONTEXT = b"tollway stored responses v1"  # a key of its own: never the key-hash pepper itself


class ResponseStore:
    def __init__(self, engine: AsyncEngine, secret: bytes, ttl_seconds: int) -> None:
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_seconds)
        key = hmac.new(secret, KEY_CONTEXT, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    async def save(self, account_id: str, response_id: str, items: list[JSON], response: JSON) -> None:
        now = utcnow()
        sealed = self._fernet.encrypt(orjson.dumps({"input": items, "response": response}))
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(stored_responses).values(
                    id=response_id,
                    account_id=account_id,
                    sealed=sealed,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )

    async def load(self, account_id: str, response_id: str) -> JSON | None:
        """{"input": items, "response": Response} of this account's live response, else None."""
        query = select(stored_responses.c.sealed).where(
            stored_responses.c.id == response_id,
            stored_responses.c.account_id == account_id,
            stored_responses.c.expires_at > utcnow(),
        )
        async with self.engine.connect() as conn:
            sealed = (await conn.execute(query)).scalar_one_or_none()
        if sealed is None:
            return None
        try:
            value: JSON = orjson.loads(self._fernet.decrypt(bytes(sealed)))
        except InvalidToken:  # sealed under another TOLLWAY_SECRET: unreadable, so absent
            return None
        return value

    async def find_item(self, account_id: str, item_id: str, scan: int = 200) -> JSON | None:
        """The item `item_id` (an `item_reference`'s id) among this account's live responses, newest
        first: an input item, or an output item (valid input too). Only the `scan` newest are opened."""
        query = (
            select(stored_responses.c.sealed)
            .where(stored_responses.c.account_id == account_id, stored_responses.c.expires_at > utcnow())
            .order_by(stored_responses.c.created_at.desc())
            .limit(scan)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).scalars().all()
        for sealed in rows:
            try:
                value = orjson.loads(self._fernet.decrypt(bytes(sealed)))
            except InvalidToken:
                continue
            for item in [*value["input"], *(value["response"].get("output") or ())]:
                if isinstance(item, dict) and item.get("id") == item_id:
                    found: JSON = item
                    return found
        return None

    async def delete(self, account_id: str, response_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(stored_responses).where(
                    stored_responses.c.id == response_id,
                    stored_responses.c.account_id == account_id,
                    stored_responses.c.expires_at > utcnow(),
                )
            )
        return bool(result.rowcount)

    async def sweep(self) -> int:
        """Delete every response past its TTL; returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(stored_responses).where(stored_responses.c.expires_at <= utcnow())
            )
        return int(result.rowcount or 0)
