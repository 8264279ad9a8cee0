"""Shutdown and the streamed-chat relay (core/inference/chat_stream.py, Pipeline.drain): a stream cut by
drain() still settles exactly once, and its client still sees the stream end; a client that leaves
while the relay queue is full does not stop the metering; the usage chunk carries the stream's id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.helpers import assert_invariants, open_reserved
from tollway.core.access.accounts import Accounts
from tollway.core.inference.chat_stream import ChatStream, Settle
from tollway.core.inference.pipeline import Pipeline
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import TokenUsage
from tollway.errors import ErrorCode

HOLD, COST = 1_000_000, 1_000


def _chunk(text: str) -> dict[str, Any]:
    return {"id": "c", "created": 1, "choices": [{"index": 0, "delta": {"content": text}}]}


def _relay(
    ledger: Ledger,
    request_id: str,
    upstream: AsyncIterator[dict[str, Any]],
    settle: Settle,
    *,
    wants_usage: bool,
) -> tuple[Pipeline, ChatStream]:
    """A ChatStream of "hello" then `upstream`'s chunks, and the pipeline whose tasks it runs in."""
    pipeline = Pipeline(None, ledger, None, drain_seconds=5)  # type: ignore[arg-type]
    stream = ChatStream(
        request_id=request_id,
        model_id="m",
        first=_chunk("hello"),
        upstream=upstream,
        settle=settle,
        prompt_estimate=3,
        wants_usage=wants_usage,
        drain_seconds=5,
    )
    return pipeline, stream


async def _client(frames: AsyncIterator[bytes]) -> list[bytes]:
    return [frame async for frame in frames]


async def _lock_account(db_url: str, account: str) -> Callable[[], Awaitable[None]]:
    """Another connection holds the account row (PostgreSQL) or the write lock (SQLite); returns
    what lets it go."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")

        async def release_sqlite() -> None:
            conn.execute("COMMIT")
            conn.close()

        return release_sqlite
    pg = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    tx = pg.transaction()
    await tx.start()
    await pg.execute("select * from accounts where id = $1 for update", account)

    async def release_pg() -> None:
        await tx.commit()
        await pg.close()

    return release_pg


async def test_a_stream_cut_while_it_settles_still_settles_and_ends(engine: AsyncEngine, db_url: str) -> None:
    """drain() cancels what outlived the grace; a stream already settling (the database slow to
    answer: here a lock held elsewhere) must not lose its settlement (the hold would go to the
    sweeper unpaid) nor leave its client waiting for the end."""
    ledger = Ledger(engine)
    account = (await Accounts(engine, ledger).create("stream", credit_nano=10 * HOLD)).id
    request_id = f"req_{secrets.token_hex(6)}"
    await ledger.reserve(account, request_id, HOLD)
    settling = asyncio.Event()
    settled: list[int] = []

    async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
        settling.set()
        charged = await ledger.settle(account, request_id, COST)
        settled.append(charged)
        return charged

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        yield _chunk(" world")

    pipeline, stream = _relay(ledger, request_id, upstream(), settle, wants_usage=False)
    release = await _lock_account(db_url, account)
    client = asyncio.create_task(_client(stream.start(pipeline._background)))
    try:
        await asyncio.wait_for(settling.wait(), 5)
        drain = asyncio.create_task(pipeline.drain(0.2, settle_seconds=5))
        await asyncio.sleep(0.5)  # the grace is over: drain() has cut the stream mid-settlement
        await release()
        await asyncio.wait_for(drain, 10)
        frames = await asyncio.wait_for(client, 5)
    finally:
        client.cancel()
        with contextlib.suppress(Exception):
            await release()
        await ledger.aclose()
    assert settled == [COST]
    assert await open_reserved(engine, account) == 0, "the hold was left for the sweeper"
    balance, _ = await assert_invariants(ledger, engine, account)
    assert balance == 10 * HOLD - COST
    assert frames[-1] == b"data: [DONE]\n\n"  # the answer was whole, and the client saw its end


async def _held(engine: AsyncEngine) -> tuple[Ledger, str, str]:
    """A ledger, an account and one request's hold on it."""
    ledger = Ledger(engine)
    account = (await Accounts(engine, ledger).create("stream", credit_nano=10 * HOLD)).id
    request_id = f"req_{secrets.token_hex(6)}"
    await ledger.reserve(account, request_id, HOLD)
    return ledger, account, request_id


async def test_a_client_that_leaves_while_the_relay_queue_is_full_still_lets_the_stream_settle(
    engine: AsyncEngine,
) -> None:
    """A fast upstream fills the bounded queue while a slow client reads one frame and leaves: the
    producer, blocked on the full queue, must be let go to drain the upstream and settle."""
    ledger, account, request_id = await _held(engine)
    settled: list[TokenUsage] = []
    sent = 0

    async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
        settled.append(usage)
        return await ledger.settle(account, request_id, COST)

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        nonlocal sent
        for _ in range(600):  # more than the queue holds (256)
            sent += 1
            yield _chunk(" word")

    pipeline, stream = _relay(ledger, request_id, upstream(), settle, wants_usage=False)
    try:
        frames = stream.start(pipeline._background)
        await frames.__anext__()
        for _ in range(100):  # until the producer waits on the full queue
            if sent > 256:
                break
            await asyncio.sleep(0.01)
        assert 256 < sent < 600
        await frames.aclose()  # the client leaves
        await asyncio.wait_for(asyncio.gather(*pipeline._background), 5)
    finally:
        await ledger.aclose()
    assert sent == 600 and len(settled) == 1  # the whole upstream was drained, then billed once
    assert await open_reserved(engine, account) == 0
    await assert_invariants(ledger, engine, account)


async def test_the_usage_chunk_keeps_the_streams_id_when_the_upstreams_last_chunk_has_none(
    engine: AsyncEngine,
) -> None:
    """Some upstreams send the closing usage chunk bare (no id, no created): the usage chunk the
    client gets still carries the stream's own id and created."""
    ledger, account, request_id = await _held(engine)

    async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
        return await ledger.settle(account, request_id, COST)

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        yield _chunk(" world")
        yield {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}

    pipeline, stream = _relay(ledger, request_id, upstream(), settle, wants_usage=True)
    try:
        frames = await asyncio.wait_for(_client(stream.start(pipeline._background)), 5)
    finally:
        await ledger.aclose()
    assert frames[-1] == b"data: [DONE]\n\n"
    final = json.loads(frames[-2].removeprefix(b"data: "))
    assert (final["id"], final["created"], final["choices"]) == ("c", 1, [])
    assert (final["usage"]["prompt_tokens"], final["usage"]["completion_tokens"]) == (3, 2)
    await assert_invariants(ledger, engine, account)


async def test_a_relay_that_breaks_on_its_own_bug_settles_as_an_internal_error(engine: AsyncEngine) -> None:
    """Not the upstream's failure but an unexpected one while relaying (here a chunk the relay cannot
    read, which a provider's checks would have refused): the client gets one INTERNAL error frame
    with its default message and no [DONE], and the call is settled as an internal error (500) for
    what was relayed."""
    ledger, account, request_id = await _held(engine)
    ended: list[tuple[str, str, int]] = []

    async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
        ended.append((source, outcome, status))
        return await ledger.settle(account, request_id, COST)

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        yield {"id": "c", "created": 1, "choices": "not a list"}  # type: ignore[misc]

    pipeline, stream = _relay(ledger, request_id, upstream(), settle, wants_usage=True)
    try:
        frames = await asyncio.wait_for(_client(stream.start(pipeline._background)), 5)
    finally:
        await ledger.aclose()
    assert ended == [("estimated", "internal_error", 500)]
    error = json.loads(frames[-1].removeprefix(b"data: "))["error"]
    assert (error["code"], error["message"], error["request_id"]) == (
        "INTERNAL",
        ErrorCode.INTERNAL.default_message,
        request_id,
    )
    assert b"[DONE]" not in b"".join(frames)
    await assert_invariants(ledger, engine, account)
