"""`Idempotency-Key`: a retried call from the same account within 24 h is metered once.

The first call runs; a repeat while it runs gets 409 CONFLICT; a repeat after it succeeded gets
the first result replayed (header `idempotent-replayed: true`) and costs nothing. A call that
failed is forgotten, so its retry runs for real. The key is bound to the request's fingerprint:
the same key with a different body is a 400.

Results are kept only in memory (one process) or Redis (replicas), each for the TTL — never in
the database, which holds no answers.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson

from tollway.core.pipeline import Result
from tollway.errors import ErrorCode, TollwayError

TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


class RecordStore(Protocol):
    async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
        """Store `record` if `name` is free and return None; else return what is stored."""
        ...

    async def put(self, name: str, record: bytes, ttl: int) -> None: ...

    async def forget(self, name: str) -> None: ...


class MemoryRecords:
    """One process's records, bounded: the oldest are dropped first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._capacity = capacity

    def _live(self, name: str) -> bytes | None:
        item = self._items.get(name)
        if item is None or item[0] < time.monotonic():
            self._items.pop(name, None)
            return None
        return item[1]

    async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
        existing = self._live(name)
        if existing is not None:
            return existing
        await self.put(name, record, ttl)
        return None

    async def put(self, name: str, record: bytes, ttl: int) -> None:
        self._items[name] = (time.monotonic() + ttl, record)
        self._items.move_to_end(name)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    async def forget(self, name: str) -> None:
        self._items.pop(name, None)


class RedisRecords:
    """Records shared by every replica: SET NX claims a key atomically across processes."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
        if await self._redis.set(name, record, nx=True, ex=ttl):
            return None
        existing: bytes | None = await self._redis.get(name)
        return existing if existing is not None else await self.claim(name, record, ttl)

    async def put(self, name: str, record: bytes, ttl: int) -> None:
        await self._redis.set(name, record, ex=ttl)

    async def forget(self, name: str) -> None:
        await self._redis.delete(name)


class Idempotency:
    def __init__(self, records: RecordStore) -> None:
        self._records = records

    async def run(
        self,
        account_id: str,
        key: str,
        endpoint: str,
        raw_body: bytes,
        produce: Callable[[], Awaitable[Result]],
    ) -> Result:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise TollwayError(
                ErrorCode.VALIDATION, "Idempotency-Key must be 1 to 255 characters.", param="Idempotency-Key"
            )
        name = f"tollway:idem:{account_id}:{hashlib.sha256(key.encode()).hexdigest()}"
        fingerprint = hashlib.sha256(endpoint.encode() + b"\0" + raw_body).hexdigest()
        running = orjson.dumps({"state": "running", "fp": fingerprint})
        existing = await self._records.claim(name, running, TTL_SECONDS)
        if existing is not None:
            return self._replay(orjson.loads(existing), fingerprint)
        try:
            result = await produce()
        except BaseException:
            await self._records.forget(name)
            raise
        if result.frames is None:
            await self._records.put(
                name, self._done(fingerprint, result.headers, body=result.body), TTL_SECONDS
            )
            return result
        return Result(
            headers=result.headers, frames=self._recording(name, fingerprint, result.headers, result.frames)
        )

    async def _recording(
        self, name: str, fingerprint: str, headers: dict[str, str], source: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        frames: list[bytes] = []
        complete = False
        try:
            async for frame in source:
                frames.append(frame)
                yield frame
            complete = True
        finally:
            if complete:
                await self._records.put(name, self._done(fingerprint, headers, frames=frames), TTL_SECONDS)
            else:
                await self._records.forget(name)  # the client left: its retry runs (and is metered) again

    @staticmethod
    def _done(
        fingerprint: str, headers: dict[str, str], *, body: Any = None, frames: list[bytes] | None = None
    ) -> bytes:
        record: dict[str, Any] = {"state": "done", "fp": fingerprint, "headers": headers}
        if frames is not None:
            record["frames"] = base64.b64encode(b"".join(frames)).decode()
        else:
            record["body"] = body
        return orjson.dumps(record)

    @staticmethod
    def _replay(record: dict[str, Any], fingerprint: str) -> Result:
        if record.get("fp") != fingerprint:
            raise TollwayError(
                ErrorCode.VALIDATION,
                "This Idempotency-Key was used with a different request; use a new key for a new request.",
                param="Idempotency-Key",
            )
        if record["state"] == "running":
            raise TollwayError(ErrorCode.CONFLICT, headers={"retry-after": "1"})
        headers = {**record["headers"], "idempotent-replayed": "true"}
        if "frames" in record:
            payload = base64.b64decode(record["frames"])

            async def replay() -> AsyncIterator[bytes]:
                yield payload

            return Result(headers=headers, frames=replay())
        return Result(headers=headers, body=record["body"])
