"""The outbox on SQLite and PostgreSQL (store/outbox.py, core/money/usage_events.py): a usage event is
written in the settlement's own transaction, only when enabled; claims are leases; retries wait."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import usage_row
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.store import outbox
from tollway.store.event_tables import event_outbox

REQ_OFF, REQ_ON, REQ_FAILED, REQ_LEASED = (f"req_{secrets.token_hex(6)}" for _ in range(4))


def sink() -> str:
    return "t" + secrets.token_hex(6)  # each test's own sink: the PostgreSQL database is shared


async def rows_of(engine: AsyncEngine, event_id: str) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(event_outbox.c.sink, event_outbox.c.state, event_outbox.c.payload).where(
                event_outbox.c.id == event_id
            )
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


async def test_a_settlement_writes_its_event_only_when_enabled(
    engine: AsyncEngine, ledger: Ledger, accts: Accounts
) -> None:
    account = (await accts.create("events", credit_nano=10**9)).id
    await ledger.reserve(account, REQ_OFF, 1000)
    await ledger.settle(account, REQ_OFF, 700, usage_row(account, REQ_OFF))
    assert await rows_of(engine, "usage_" + REQ_OFF) == []
    a, b = sink(), sink()
    outbox.enable_usage(engine.url, [a, b])
    try:
        await ledger.reserve(account, REQ_ON, 1000)
        charged = await ledger.settle(account, REQ_ON, 700, usage_row(account, REQ_ON))
        await ledger.reserve(account, REQ_FAILED, 1000)
        await ledger.release(REQ_FAILED, usage_row(account, REQ_FAILED, outcome="upstream_error"))
    finally:
        outbox.disable_usage(engine.url)
    found = await rows_of(engine, "usage_" + REQ_ON)
    assert sorted(s for s, _, _ in found) == sorted([a, b]) and {st for _, st, _ in found} == {"pending"}
    event = json.loads(found[0][2])
    assert (event["cost_nano"], event["cost_usd"], event["request_id"]) == (charged, "0.000000700", REQ_ON)
    assert (event["prompt_tokens"], event["completion_tokens"], event["account_id"]) == (1234, 567, account)
    assert "key_label" not in event and "provider" not in event
    [failed, _] = await rows_of(engine, "usage_" + REQ_FAILED)
    assert json.loads(failed[2])["cost_nano"] == 0 and json.loads(failed[2])["outcome"] == "upstream_error"


async def test_claims_are_leases_and_retries_wait(engine: AsyncEngine) -> None:
    name = sink()
    ids = [f"evt_{secrets.token_hex(4)}" for _ in range(3)]
    async with engine.begin() as conn:
        for event_id in ids:
            await conn.run_sync(lambda c, e=event_id: outbox.add(c, e, name, "usage", "acct", "{}"))
    first = await outbox.claim(engine, [name], 2, 30)
    second = await outbox.claim(engine, [name], 10, 30)
    assert [r.id for r in first] == ids[:2] and [r.id for r in second] == ids[2:]
    assert await outbox.claim(engine, [name], 10, 30) == []  # all leased
    await outbox.sent(engine, first)
    await outbox.retry(engine, second, "broker down", [60.0])
    assert await outbox.claim(engine, [name], 10, 30) == []  # sent, or waiting its backoff
    async with engine.begin() as conn:  # the backoff ran out
        await conn.execute(
            update(event_outbox).where(event_outbox.c.id == ids[2]).values(next_attempt_at=utcnow())
        )
    [again] = await outbox.claim(engine, [name], 10, 30)
    assert (again.id, again.attempts) == (ids[2], 1)
    await outbox.sent(engine, second)  # a stale claim marks nothing
    assert (await rows_of(engine, ids[2]))[0][1] == "pending"
    await outbox.retry(engine, [again], "gone", [0.0], give_up=True)
    assert [r[1] for r in await rows_of(engine, ids[0])] == ["sent"]
    assert [r[1] for r in await rows_of(engine, ids[2])] == ["failed"]


async def test_a_budget_lease_settlement_writes_its_event_too(engine: AsyncEngine, accts: Accounts) -> None:
    """Budget leases (core/money/leases.py) settle through the same charge: the event comes with it."""
    leased = Ledger(engine, budget_leases=True)
    name = sink()
    try:
        account = (await accts.create("leased-events", credit_nano=10**9)).id
        outbox.enable_usage(engine.url, [name])
        try:
            await leased.reserve(account, REQ_LEASED, 1000)
            charged = await leased.settle(account, REQ_LEASED, 600, usage_row(account, REQ_LEASED))
        finally:
            outbox.disable_usage(engine.url)
    finally:
        await leased.aclose()
    [(got_sink, state, payload)] = await rows_of(engine, "usage_" + REQ_LEASED)
    assert (got_sink, state, json.loads(payload)["cost_nano"]) == (name, "pending", charged)


async def test_the_publisher_sends_backs_off_and_counts(engine: AsyncEngine) -> None:
    """A sink that fails puts its rows back with a backoff (the rest of its batch too); another sink's
    rows go on; a sink with max_attempts gives a row up after that many."""
    from tollway.core.events.publisher import Publisher
    from tollway.core.events.webhooks import DeliveryError, Poster
    from tollway.telemetry import metrics

    ok_name, down_name = sink(), sink()
    delivered: list[str] = []

    class Sink:
        def __init__(self, name: str, up: bool, max_attempts: int | None) -> None:
            self.name, self.up, self.max_attempts = name, up, max_attempts
            self.concurrency = 2

        async def deliver(self, row: outbox.Claimed) -> None:
            if not self.up:
                raise DeliveryError("broker down")
            delivered.append(row.id)

        async def aclose(self) -> None:
            return None

    async with engine.begin() as conn:
        for i in range(3):
            for name in (ok_name, down_name):
                await conn.run_sync(
                    lambda c, n=name, i=i: outbox.add(c, f"{n}_{i}", n, "usage", "acct", "{}")
                )
    poster = Poster()
    down = Sink(down_name, False, 2)
    publisher = Publisher(
        engine, {ok_name: Sink(ok_name, True, None), down_name: down}, poster=poster, retry_base_seconds=60
    )
    try:
        before = metrics.EVENTS.labels(down_name, "retried")._value.get()
        assert await publisher.tick() == 6
        assert sorted(delivered) == [f"{ok_name}_{i}" for i in range(3)]
        assert metrics.EVENTS.labels(down_name, "retried")._value.get() == before + 3
        assert await publisher.tick() == 0  # the down sink's rows wait their backoff
        async with engine.begin() as conn:
            await conn.execute(
                update(event_outbox).where(event_outbox.c.sink == down_name).values(next_attempt_at=utcnow())
            )
        assert await publisher.tick() == 3  # the second failure: max_attempts 2, given up
        async with engine.connect() as conn:
            states = (
                await conn.execute(select(event_outbox.c.state).where(event_outbox.c.sink == down_name))
            ).all()
        assert [s for (s,) in states] == ["failed"] * 3
    finally:
        await poster.aclose()
