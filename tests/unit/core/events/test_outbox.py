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
    await ledger.reserve(account, "req_off", 1000)
    await ledger.settle(account, "req_off", 700, usage_row(account, "req_off"))
    assert await rows_of(engine, "usage_req_off") == []
    a, b = sink(), sink()
    outbox.enable_usage(engine.url, [a, b])
    try:
        await ledger.reserve(account, "req_on", 1000)
        charged = await ledger.settle(account, "req_on", 700, usage_row(account, "req_on"))
        await ledger.reserve(account, "req_failed", 1000)
        await ledger.release("req_failed", usage_row(account, "req_failed", outcome="upstream_error"))
    finally:
        outbox.disable_usage(engine.url)
    found = await rows_of(engine, "usage_req_on")
    assert sorted(s for s, _, _ in found) == sorted([a, b]) and {st for _, st, _ in found} == {"pending"}
    event = json.loads(found[0][2])
    assert (event["cost_nano"], event["cost_usd"], event["request_id"]) == (charged, "0.000000700", "req_on")
    assert (event["prompt_tokens"], event["completion_tokens"], event["account_id"]) == (1234, 567, account)
    assert "key_label" not in event and "provider" not in event
    [failed, _] = await rows_of(engine, "usage_req_failed")
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
