"""Idempotency: record stores (claim once, replay, forget) and the rules of `Idempotency.run`, in
memory and on the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tollway.core.idempotency import (
    RUNNING_TTL_SECONDS,
    Idempotency,
    MemoryRecords,
    RecordStore,
    RedisRecords,
    Reply,
)
from tollway.errors import ErrorCode, TollwayError


@pytest.fixture(params=["memory", "redis"])
async def records(request: pytest.FixtureRequest) -> AsyncIterator[RecordStore]:
    if request.param == "memory":
        yield MemoryRecords(capacity=3)
        return
    import redis.asyncio

    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.exceptions.RedisError) as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({exc}); Redis idempotency tests skipped")
    yield RedisRecords(client)
    await client.aclose()


async def test_claim_is_exclusive_until_forgotten(records: RecordStore) -> None:
    name = f"test:{uuid.uuid4().hex}"
    assert await records.claim(name, b"first", 60) is None
    assert await records.claim(name, b"second", 60) == b"first"
    await records.put(name, b"done", 60)
    assert await records.claim(name, b"third", 60) == b"done"
    await records.forget(name)
    assert await records.claim(name, b"fourth", 60) is None
    await records.forget(name)


async def test_memory_records_are_bounded() -> None:
    records = MemoryRecords(capacity=2)
    for name in ("a", "b", "c"):
        await records.put(name, name.encode(), 60)
    assert await records.claim("a", b"new", 60) is None  # the oldest was dropped
    assert await records.claim("c", b"new", 60) == b"c"


async def test_memory_records_are_bounded_by_bytes() -> None:
    records = MemoryRecords(capacity=100, max_bytes=10)
    await records.put("a", b"12345", 60)
    await records.put("b", b"12345", 60)
    await records.put("c", b"1", 60)  # 11 bytes: the oldest goes
    assert await records.claim("a", b"new", 60) is None
    assert await records.claim("c", b"new", 60) == b"1"
    await records.put("b", b"", 60)  # replacing a record frees its bytes
    await records.forget("a")
    await records.put("d", b"123456789", 60)
    assert await records.claim("d", b"x", 60) == b"123456789"


async def test_memory_records_keep_the_newest_record_even_when_it_alone_is_over_the_bytes() -> None:
    records = MemoryRecords(capacity=100, max_bytes=4)
    await records.put("big", b"0123456789", 60)
    assert await records.claim("big", b"x", 60) == b"0123456789"


async def test_memory_records_at_exactly_their_bounds_drop_nothing() -> None:
    by_bytes = MemoryRecords(capacity=100, max_bytes=8)
    await by_bytes.put("a", b"1234", 60)
    await by_bytes.put("b", b"5678", 60)  # 8 bytes of 8
    assert await by_bytes.claim("a", b"x", 60) == b"1234"
    one = MemoryRecords(capacity=1)
    await one.put("a", b"a", 60)
    await one.put("b", b"b", 60)  # 2 of 1: the older goes
    assert await one.claim("a", b"new", 60) is None


async def test_memory_records_count_the_bytes_left_after_a_forget() -> None:
    records = MemoryRecords(capacity=100, max_bytes=10)
    await records.put("a", b"123456", 60)
    await records.put("b", b"123", 60)
    await records.forget("b")  # 6 bytes left, not 3
    await records.put("c", b"12345", 60)  # 11 bytes: the oldest goes
    assert await records.claim("a", b"new", 60) is None
    assert await records.claim("c", b"x", 60) == b"12345"


async def test_redis_records_expire_with_their_ttl() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.exceptions.RedisError) as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({exc}); Redis idempotency tests skipped")
    records = RedisRecords(client)
    claimed, kept = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    try:
        assert await records.claim(claimed, b"running", 40) is None
        await records.put(kept, b"done", 90)
        assert 35 <= await client.ttl(claimed) <= 40
        assert 85 <= await client.ttl(kept) <= 90
    finally:
        await client.delete(claimed, kept)
        await client.aclose()


def _counter() -> tuple[Callable[[], Awaitable[Reply]], list[int]]:
    calls = [0]

    async def produce() -> Reply:
        calls[0] += 1
        return Reply(201, {"content-type": "audio/mpeg", "x-n": str(calls[0])}, bytes([0, 255, calls[0]]))

    return produce, calls


async def test_run_replays_bytes_and_forgets_failures(records: RecordStore) -> None:
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    produce, calls = _counter()

    first = await idempotency.run(account, "k", "speech", b"{}", produce)
    again = await idempotency.run(account, "k", "speech", b"{}", produce)
    assert (first.body, again.body, calls[0]) == (b"\x00\xff\x01", b"\x00\xff\x01", 1)
    assert again.status == 201
    assert again.headers == {"content-type": "audio/mpeg", "x-n": "1", "idempotent-replayed": "true"}
    other_account = await idempotency.run(f"{account}x", "k", "speech", b"{}", produce)
    assert other_account.body == b"\x00\xff\x02" and "idempotent-replayed" not in other_account.headers
    for endpoint, request in (("speech", b'{"other": 1}'), ("chat", b"{}")):
        with pytest.raises(TollwayError) as caught:
            await idempotency.run(account, "k", endpoint, request, produce)
        assert (caught.value.code, caught.value.param) == (ErrorCode.VALIDATION, "Idempotency-Key")

    async def fail() -> Reply:
        raise TollwayError(ErrorCode.UPSTREAM_ERROR)

    with pytest.raises(TollwayError):
        await idempotency.run(account, "k2", "speech", b"{}", fail)
    assert (await idempotency.run(account, "k2", "speech", b"{}", produce)).body == b"\x00\xff\x03"

    async def refused() -> Reply:
        return Reply(402, {}, b'{"error": {}}')

    assert (await idempotency.run(account, "k3", "speech", b"{}", refused)).status == 402
    assert (await idempotency.run(account, "k3", "speech", b"{}", produce)).body == b"\x00\xff\x04"
    with pytest.raises(TollwayError) as too_long:
        await idempotency.run(account, "x" * 256, "speech", b"{}", produce)
    assert too_long.value.param == "Idempotency-Key"


async def test_a_running_key_is_409(records: RecordStore) -> None:
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> Reply:
        started.set()
        await release.wait()
        return Reply(200, {}, b"done")

    first = asyncio.create_task(idempotency.run(account, "k", "chat", b"{}", slow))
    await started.wait()
    with pytest.raises(TollwayError) as busy:
        await idempotency.run(account, "k", "chat", b"{}", slow)
    assert busy.value.code is ErrorCode.CONFLICT and busy.value.headers == {"retry-after": "1"}
    release.set()
    assert (await first).body == b"done"
    assert (await idempotency.run(account, "k", "chat", b"{}", slow)).headers["idempotent-replayed"] == "true"


async def _drain(reply: Reply) -> bytes:
    assert reply.chunks is not None
    return b"".join([chunk async for chunk in reply.chunks])


async def test_streams_are_kept_when_complete_and_forgotten_when_left(records: RecordStore) -> None:
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    calls = 0
    closed: list[int] = []

    async def stream() -> Reply:
        nonlocal calls
        calls += 1
        n = calls

        async def chunks() -> AsyncIterator[bytes]:
            try:
                for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
                    yield part
            finally:
                closed.append(n)  # where a real source settles what it relayed

        return Reply(200, {"content-type": "text/event-stream"}, chunks=chunks())

    left = await idempotency.run(account, "s", "chat", b"{}", stream)
    assert left.chunks is not None
    assert await left.chunks.__anext__() == b"data: 1\n\n"
    await left.chunks.aclose()  # the client went away: forgotten
    assert closed == [1]  # the source was closed at once, not whenever it is collected
    whole = await _drain(await idempotency.run(account, "s", "chat", b"{}", stream))
    replayed = await idempotency.run(account, "s", "chat", b"{}", stream)
    assert calls == 2 and await _drain(replayed) == whole == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_an_answer_too_large_to_keep_is_not_run_twice(records: RecordStore) -> None:
    idempotency = Idempotency(records, max_body_bytes=2)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    produce, calls = _counter()
    assert (await idempotency.run(account, "big", "image", b"{}", produce)).body == b"\x00\xff\x01"
    with pytest.raises(TollwayError) as caught:
        await idempotency.run(account, "big", "image", b"{}", produce)
    assert caught.value.param == "Idempotency-Key" and "3 bytes" in caught.value.message
    assert calls[0] == 1

    async def stream() -> Reply:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"ab"
            yield b"cd"

        return Reply(200, {}, chunks=chunks())

    assert await _drain(await idempotency.run(account, "big-stream", "speech", b"{}", stream)) == b"abcd"
    with pytest.raises(TollwayError) as streamed:
        await idempotency.run(account, "big-stream", "speech", b"{}", stream)
    assert "4 bytes" in streamed.value.message


async def test_a_stream_that_ended_in_an_error_is_forgotten(records: RecordStore) -> None:
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    endings = [
        b'data: {"error":{"message":"The upstream failed mid-stream","code":"UPSTREAM_ERROR"}}\n\n',
        b"data: [DONE]\n\n",
    ]

    async def stream() -> Reply:
        ending = endings.pop(0)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'data: {"choices":[{"delta":{"content":"say \\"error\\":{ please"}}]}\n\n'
            yield ending

        return Reply(200, {"content-type": "text/event-stream"}, chunks=chunks())

    failed = await _drain(await idempotency.run(account, "e", "chat", b"{}", stream))
    assert b"UPSTREAM_ERROR" in failed
    retried = await idempotency.run(account, "e", "chat", b"{}", stream)  # runs again, not a replay
    assert "idempotent-replayed" not in retried.headers
    assert (await _drain(retried)).endswith(b"data: [DONE]\n\n")
    replayed = await idempotency.run(account, "e", "chat", b"{}", stream)  # the success is kept
    assert replayed.headers["idempotent-replayed"] == "true" and not endings


async def test_a_claim_left_by_a_dead_process_expires_soon(records: RecordStore) -> None:
    claimed: list[int] = []

    class Spy(MemoryRecords):
        async def claim(self, name: str, record: bytes, ttl: int) -> bytes | None:
            claimed.append(ttl)
            return await super().claim(name, record, ttl)

    async def produce() -> Reply:
        return Reply(200, {}, b"ok")

    await Idempotency(Spy()).run(f"acct_{uuid.uuid4().hex[:8]}", "k", "chat", b"{}", produce)
    assert claimed and claimed[0] <= RUNNING_TTL_SECONDS <= 3600  # not the 24 h of a finished answer


@pytest.mark.parametrize("as_sse", [True, False], ids=["sse", "json-array"])
async def test_a_gemini_stream_that_ended_in_an_error_is_forgotten(
    records: RecordStore, as_sse: bool
) -> None:
    """Gemini's streamGenerateContent without alt=sse is a JSON array: the error element is followed
    by the closing `]`, so the error is not in the stream's last chunk."""
    from tollway.core.inference.chat_stream import sse
    from tollway.dialects.gemini.stream import events

    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    endings = [
        sse({"error": {"message": "The upstream failed mid-stream.", "code": "UPSTREAM_ERROR"}}),
        sse("[DONE]"),
    ]

    async def frames(ending: bytes) -> AsyncIterator[bytes]:
        yield sse({"id": "c1", "created": 1, "choices": [{"index": 0, "delta": {"content": "half an"}}]})
        yield ending

    async def stream() -> Reply:
        chunks = events(frames(endings.pop(0)), "m", as_sse)
        return Reply(200, {"content-type": "application/json"}, chunks=chunks)

    failed = await _drain(await idempotency.run(account, "g", "gemini", b"{}", stream))
    assert b'"error":{' in failed
    retried = await idempotency.run(account, "g", "gemini", b"{}", stream)  # runs again, not a replay
    assert "idempotent-replayed" not in retried.headers
    whole = await _drain(retried)
    replayed = await idempotency.run(account, "g", "gemini", b"{}", stream)  # the success is kept
    assert replayed.headers["idempotent-replayed"] == "true" and await _drain(replayed) == whole
    assert not endings


async def test_a_stream_that_outlives_the_running_ttl_is_still_409(
    records: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running TTL only has to outlast a dead process: a stream still relaying (a long answer)
    keeps its claim, so a retry meanwhile is a 409, not a second run (and a second charge)."""
    from tollway.core import idempotency as module

    monkeypatch.setattr(module, "RUNNING_TTL_SECONDS", 1)
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    calls = 0

    async def stream() -> Reply:
        nonlocal calls
        calls += 1

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(12):  # 2.4 s of answer, well past the 1 s claim
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.2)
            yield b"data: [DONE]\n\n"

        return Reply(200, {"content-type": "text/event-stream"}, chunks=chunks())

    relaying = asyncio.create_task(_drain(await idempotency.run(account, "long", "chat", b"{}", stream)))
    await asyncio.sleep(1.8)
    with pytest.raises(TollwayError) as busy:
        await idempotency.run(account, "long", "chat", b"{}", stream)
    assert busy.value.code is ErrorCode.CONFLICT and calls == 1
    whole = await relaying
    replayed = await idempotency.run(account, "long", "chat", b"{}", stream)
    assert replayed.headers["idempotent-replayed"] == "true" and await _drain(replayed) == whole
    assert calls == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_a_key_of_no_or_too_many_characters_is_refused_before_anything_runs(key: str) -> None:
    produce, calls = _counter()
    with pytest.raises(TollwayError) as refused:
        await Idempotency(MemoryRecords()).run("acct_x", key, "speech", b"{}", produce)
    assert (refused.value.code, refused.value.param, refused.value.message) == (
        ErrorCode.VALIDATION,
        "Idempotency-Key",
        "Idempotency-Key must be 1 to 255 characters.",
    )
    assert calls == [0]


async def test_a_key_of_255_characters_is_kept() -> None:
    produce, calls = _counter()
    idempotency = Idempotency(MemoryRecords())
    first = await idempotency.run("acct_x", "k" * 255, "speech", b"{}", produce)
    again = await idempotency.run("acct_x", "k" * 255, "speech", b"{}", produce)
    assert calls == [1] and again.body == first.body and again.headers["idempotent-replayed"] == "true"


async def test_a_redis_record_that_expires_between_set_and_get_is_claimed_again() -> None:
    """SET NX found another replica's record, which expired before our GET: claim it, don't assume."""
    import redis.asyncio

    class ExpiresBetween(redis.asyncio.Redis):
        armed = True

        async def get(self, name: Any) -> Any:
            if self.armed:  # the other replica's record runs out just now
                self.armed = False
                await self.delete(name)
            return await super().get(name)

    client = ExpiresBetween.from_url("redis://127.0.0.1:6379/0", socket_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.exceptions.RedisError) as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({exc}); Redis idempotency tests skipped")
    name = f"test:{uuid.uuid4().hex}"
    try:
        await client.set(name, b"theirs", ex=60)
        assert await RedisRecords(client).claim(name, b"ours", 60) is None
        assert await client.get(name) == b"ours"
    finally:
        await client.delete(name)
        await client.aclose()
