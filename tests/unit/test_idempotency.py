"""Idempotency record stores: claim once, replay, forget; in memory and on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tollway.core.idempotency import Idempotency, MemoryRecords, RecordStore, RedisRecords
from tollway.core.pipeline import Result
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


async def test_run_replays_and_forgets_failures(records: RecordStore) -> None:
    idempotency = Idempotency(records)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    calls = 0

    async def produce() -> Result:
        nonlocal calls
        calls += 1
        return Result(headers={"x-n": str(calls)}, body={"n": calls})

    first = await idempotency.run(account, "k", "chat", b"{}", produce)
    again = await idempotency.run(account, "k", "chat", b"{}", produce)
    assert (first.body, again.body, calls) == ({"n": 1}, {"n": 1}, 1)
    assert again.headers == {"x-n": "1", "idempotent-replayed": "true"}
    with pytest.raises(TollwayError) as caught:
        await idempotency.run(account, "k", "chat", b'{"other": 1}', produce)
    assert caught.value.code is ErrorCode.VALIDATION

    async def fail() -> Result:
        raise TollwayError(ErrorCode.UPSTREAM_ERROR)

    with pytest.raises(TollwayError):
        await idempotency.run(account, "k2", "chat", b"{}", fail)
    assert (await idempotency.run(account, "k2", "chat", b"{}", produce)).body == {"n": 2}
    with pytest.raises(TollwayError) as too_long:
        await idempotency.run(account, "x" * 256, "chat", b"{}", produce)
    assert too_long.value.param == "Idempotency-Key"
