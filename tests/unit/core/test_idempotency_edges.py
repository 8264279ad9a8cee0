"""Idempotency at its edges: exact size bounds, non-2xx replies, sources without `aclose`, the
renewal of a long stream's running claim, and the words a refusal uses.

A replayed answer is money already charged: keeping one that should not be kept, or running twice one
that should be replayed, charges the customer twice or gives a stale answer. The clock of the claim
renewal is `time.monotonic`, which the renewal test drives by hand.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tollway.core.idempotency import RUNNING_TTL_SECONDS, Idempotency, MemoryRecords, Reply
from tollway.errors import ErrorCode, TollwayError

LIMIT = 6


def _account() -> str:
    return f"acct_{uuid.uuid4().hex[:8]}"


async def _drain(reply: Reply) -> bytes:
    assert reply.chunks is not None
    return b"".join([chunk async for chunk in reply.chunks])


async def test_an_answer_of_exactly_the_kept_size_is_replayed() -> None:
    idempotency, account, runs = Idempotency(MemoryRecords(), max_body_bytes=LIMIT), _account(), []

    async def buffered() -> Reply:
        runs.append("buffered")
        return Reply(200, {}, b"x" * LIMIT)

    async def streamed() -> Reply:
        runs.append("streamed")

        async def chunks() -> AsyncIterator[bytes]:
            yield b"abc"
            yield b"def"

        return Reply(200, {}, chunks=chunks())

    await idempotency.run(account, "b", "image", b"{}", buffered)
    assert (await idempotency.run(account, "b", "image", b"{}", buffered)).body == b"x" * LIMIT
    assert await _drain(await idempotency.run(account, "s", "speech", b"{}", streamed)) == b"abcdef"
    assert await _drain(await idempotency.run(account, "s", "speech", b"{}", streamed)) == b"abcdef"
    assert runs == ["buffered", "streamed"]


@pytest.mark.parametrize("status", [199, 300, 402])
async def test_only_a_2xx_answer_is_kept(status: int) -> None:
    idempotency, account, runs = Idempotency(MemoryRecords()), _account(), []

    async def produce() -> Reply:
        runs.append(status)
        return Reply(status, {}, b"{}")

    for _ in range(2):
        assert (await idempotency.run(account, "k", "chat", b"{}", produce)).status == status
    assert runs == [status, status]


async def test_a_source_without_aclose_is_recorded_when_it_ends() -> None:
    class Plain:
        """An async iterator with no `aclose` (not a generator)."""

        def __init__(self) -> None:
            self.parts = [b"one", b"two"]

        def __aiter__(self) -> Plain:
            return self

        async def __anext__(self) -> bytes:
            if not self.parts:
                raise StopAsyncIteration
            return self.parts.pop(0)

    idempotency, account = Idempotency(MemoryRecords()), _account()

    async def produce() -> Reply:
        return Reply(200, {}, chunks=Plain())

    assert await _drain(await idempotency.run(account, "p", "speech", b"{}", produce)) == b"onetwo"
    replay = await idempotency.run(account, "p", "speech", b"{}", produce)
    assert replay.headers["idempotent-replayed"] == "true" and await _drain(replay) == b"onetwo"


async def test_the_same_key_on_another_request_is_refused_in_words() -> None:
    idempotency, account = Idempotency(MemoryRecords()), _account()

    async def produce() -> Reply:
        return Reply(200, {}, b"{}")

    await idempotency.run(account, "k", "chat", b'{"a":1}', produce)
    with pytest.raises(TollwayError) as refused:
        await idempotency.run(account, "k", "chat", b'{"a":2}', produce)
    assert (refused.value.code, refused.value.param, refused.value.message) == (
        ErrorCode.VALIDATION,
        "Idempotency-Key",
        "This Idempotency-Key was used with a different request; use a new key for a new request.",
    )


async def test_an_answer_too_large_to_keep_says_so_and_what_to_do() -> None:
    idempotency, account = Idempotency(MemoryRecords(), max_body_bytes=LIMIT), _account()

    async def produce() -> Reply:
        return Reply(200, {}, b"x" * (LIMIT + 1))

    await idempotency.run(account, "big", "image", b"{}", produce)
    with pytest.raises(TollwayError) as refused:
        await idempotency.run(account, "big", "image", b"{}", produce)
    assert refused.value.message == (
        "The request with this Idempotency-Key succeeded and was charged, but its answer (7 bytes) is "
        "larger than the 6 bytes kept for replay; use a new key to run it again."
    )


class Spy(MemoryRecords):
    """Memory records that remember each `put` as (state, ttl)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[tuple[str, int]] = []

    async def put(self, name: str, record: bytes, ttl: int) -> None:
        self.puts.append(("running" if b'"running"' in record else "done", ttl))
        await super().put(name, record, ttl)


@pytest.mark.parametrize(
    ("step", "renewed_at"),
    [
        (0.3, [2, 4]),  # 0.3, 0.6 (renew: due 0.933), 0.9, 1.2 (renew) thirds of the TTL
        (1 / 3, [1, 2, 3, 4]),  # exactly a third each time: due at each chunk
    ],
)
async def test_a_long_stream_renews_its_running_claim_every_third_of_its_ttl(
    monkeypatch: pytest.MonkeyPatch, step: float, renewed_at: list[int]
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    records = Spy()
    idempotency, account = Idempotency(records), _account()
    seen: list[int] = []

    async def produce() -> Reply:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(1, 5):
                now[0] += step * RUNNING_TTL_SECONDS
                seen.append(n)
                yield b"%d" % n

        return Reply(200, {}, chunks=chunks())

    reply = await idempotency.run(account, "long", "speech", b"{}", produce)
    assert records.puts == [("running", RUNNING_TTL_SECONDS)]  # the claim
    records.puts.clear()
    renewals: list[int] = []
    assert reply.chunks is not None
    async for _ in reply.chunks:
        renewals += [seen[-1]] * (len(records.puts) - len(renewals))
    assert renewals == renewed_at
    assert records.puts == [("running", RUNNING_TTL_SECONDS)] * len(renewed_at) + [
        ("done", records.puts[-1][1])
    ]
