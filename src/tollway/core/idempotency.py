"""`Idempotency-Key`: a retried call from the same account within 24 h is metered once.

The first call runs; a repeat while it runs gets 409 CONFLICT; a repeat after it succeeded gets
the first answer replayed — same status, headers and body bytes, plus `idempotent-replayed: true` —
and costs nothing. A call that failed (raised, answered non-2xx, or a stream the client left) is
forgotten, so its retry runs for real. The key is bound to the request's fingerprint: the same key
with a different request is a 400 (param `Idempotency-Key`).

What is kept is a `Reply`: status, headers and the body as bytes (JSON, audio, images alike; a
stream is kept once it ended, and replayed as one chunk). A body larger than `MAX_BODY_BYTES` is not
kept: the key then remembers only that its call succeeded (and was charged), and a repeat is a 400
that says so rather than a second charge.

Records are kept only in memory (one process, bounded by count and bytes) or Redis (replicas), each
for the TTL — never in the database, which holds no answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tollway.errors import ErrorCode, TollwayError

TTL_SECONDS = 24 * 3600
# A claim whose process died mid-call (SIGKILL, OOM) must not answer 409 for a day: a call cannot
# wait longer than this for its answer (the router's deadline is shorter). A stream can relay for
# longer, so it renews its claim as its chunks flow (a retry meanwhile is still a 409).
RUNNING_TTL_SECONDS = 15 * 60
# Every error frame Tollway writes into a stream (OpenAI, Anthropic and Gemini shapes) carries an
# `error` object; inside generated text the quotes would be escaped, so this never matches content.
_ERROR_FRAME = b'"error":{'
MAX_KEY_LENGTH = 255
MAX_BODY_BYTES = 8 * 1024 * 1024  # the largest answer kept for replay
MEMORY_MAX_BYTES = 256 * 1024 * 1024  # all records of one process (MemoryRecords)
# v2: records are a JSON head, a newline, then the body bytes (v1 held JSON only).
PREFIX = "tollway:idem:v2"


@dataclass(slots=True)
class Reply:
    """A finished answer as the store keeps it: status, headers, and the body — bytes, or chunks."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None  # a stream, relayed as it comes


class RecordStore(Protocol):
    async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
        """Store `record` if `name` is free and return None; else return what is stored."""
        ...

    async def put(self, name: str, record: bytes, ttl: int) -> None: ...

    async def forget(self, name: str) -> None: ...


class MemoryRecords:
    """One process's records, bounded by count and bytes: the oldest are dropped first."""

    def __init__(self, capacity: int = 10_000, max_bytes: int = MEMORY_MAX_BYTES) -> None:
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0

    def _live(self, name: str) -> bytes | None:
        item = self._items.get(name)
        if item is None or item[0] < time.monotonic():
            self._drop(name)
            return None
        return item[1]

    def _drop(self, name: str) -> None:
        item = self._items.pop(name, None)
        if item is not None:
            self._bytes -= len(item[1])

    async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
        existing = self._live(name)
        if existing is not None:
            return existing
        await self.put(name, record, ttl)
        return None

    async def put(self, name: str, record: bytes, ttl: int) -> None:
        self._drop(name)
        self._items[name] = (time.monotonic() + ttl, record)
        self._bytes += len(record)
        while len(self._items) > 1 and (len(self._items) > self._capacity or self._bytes > self._max_bytes):
            self._drop(next(iter(self._items)))

    async def forget(self, name: str) -> None:
        self._drop(name)


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


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close a source left early at once (its own `finally` settles), not whenever it is collected."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _pack(head: dict[str, Any], body: bytes = b"") -> bytes:
    return orjson.dumps(head) + b"\n" + body  # orjson never writes a newline


def _unpack(record: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, body = record.partition(b"\n")
    loaded: dict[str, Any] = orjson.loads(head)
    return loaded, body


class Idempotency:
    def __init__(self, records: RecordStore, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._records = records
        self._max_body = max_body_bytes

    async def run(
        self,
        account_id: str,
        key: str,
        endpoint: str,
        request: bytes,
        produce: Callable[[], Awaitable[Reply]],
    ) -> Reply:
        """Run `produce` once per (account, key); `request` is what the key is bound to."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise TollwayError(
                ErrorCode.VALIDATION, "Idempotency-Key must be 1 to 255 characters.", param="Idempotency-Key"
            )
        name = f"{PREFIX}:{account_id}:{hashlib.sha256(key.encode()).hexdigest()}"
        fingerprint = hashlib.sha256(endpoint.encode() + b"\0" + request).hexdigest()
        claimed_at = time.monotonic()
        existing = await self._records.claim(
            name, _pack({"state": "running", "fp": fingerprint}), RUNNING_TTL_SECONDS
        )
        if existing is not None:
            return self._replay(existing, fingerprint)
        try:
            reply = await produce()
        except BaseException:
            await self._records.forget(name)
            raise
        if not 200 <= reply.status < 300:
            await self._records.forget(name)
            return reply
        if reply.chunks is None:
            await self._records.put(name, self._done(fingerprint, reply, reply.body), TTL_SECONDS)
            return reply
        chunks = self._recording(name, fingerprint, reply, claimed_at)
        return Reply(reply.status, reply.headers, chunks=chunks)

    async def _recording(
        self, name: str, fingerprint: str, reply: Reply, claimed_at: float
    ) -> AsyncIterator[bytes]:
        assert reply.chunks is not None
        renew_at = claimed_at + RUNNING_TTL_SECONDS / 3
        chunks: list[bytes] = []
        size = 0
        complete = False
        # The last two chunks: Gemini's JSON-array stream closes (`]`) after its error element.
        previous, last = b"", b""
        try:
            async for chunk in reply.chunks:
                size += len(chunk)
                if chunk:
                    previous, last = last, chunk
                if time.monotonic() >= renew_at:  # still relaying: keep the claim
                    running = _pack({"state": "running", "fp": fingerprint})
                    with contextlib.suppress(Exception):  # a store that fails now must not cut the answer
                        await self._records.put(name, running, RUNNING_TTL_SECONDS)
                    renew_at = time.monotonic() + RUNNING_TTL_SECONDS / 3
                if size <= self._max_body:
                    chunks.append(chunk)
                else:
                    chunks.clear()  # too large to keep: only its size is remembered
                yield chunk
            complete = True
        finally:
            await _close(reply.chunks)
            if complete and _ERROR_FRAME not in last and _ERROR_FRAME not in previous:
                record = self._done(fingerprint, reply, b"".join(chunks), size=size, streamed=True)
                await self._records.put(name, record, TTL_SECONDS)
            else:  # the client left, or the stream ended in an error: a retry runs (and is metered) again
                await self._records.forget(name)

    def _done(
        self, fingerprint: str, reply: Reply, body: bytes, *, size: int | None = None, streamed: bool = False
    ) -> bytes:
        size = len(body) if size is None else size
        head: dict[str, Any] = {"state": "done", "fp": fingerprint, "status": reply.status, "size": size}
        if size > self._max_body:
            return _pack({**head, "kept": False})
        return _pack({**head, "kept": True, "headers": reply.headers, "streamed": streamed}, body)

    def _replay(self, record: bytes, fingerprint: str) -> Reply:
        head, body = _unpack(record)
        if head.get("fp") != fingerprint:
            raise TollwayError(
                ErrorCode.VALIDATION,
                "This Idempotency-Key was used with a different request; use a new key for a new request.",
                param="Idempotency-Key",
            )
        if head["state"] == "running":
            raise TollwayError(ErrorCode.CONFLICT, headers={"retry-after": "1"})
        if not head.get("kept"):
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"The request with this Idempotency-Key succeeded and was charged, but its answer "
                f"({head.get('size')} bytes) is larger than the {self._max_body} bytes kept for replay; "
                "use a new key to run it again.",
                param="Idempotency-Key",
            )
        headers = {**head["headers"], "idempotent-replayed": "true"}
        if head.get("streamed"):

            async def replay() -> AsyncIterator[bytes]:
                yield body

            return Reply(head["status"], headers, chunks=replay())
        return Reply(head["status"], headers, body)
