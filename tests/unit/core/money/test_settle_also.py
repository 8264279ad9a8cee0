"""A settlement's `also` (a batch line's record, run in the settlement's transaction) through the
ledger and the one charge path, and the usage row a hold writes: survivors of the mutation run
(docs/testing.md). On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import new_account, rid, usage_row
from tests.unit.core.test_admission import _caller, _hold, _model, _rows
from tests.unit.helpers import assert_invariants
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.admission import Hold, admit
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import TokenUsage
from tollway.store.tables import usage

FUNDS = 1_000_000


class Boom(Exception):
    pass


async def test_a_settlement_runs_also_in_its_transaction_and_an_also_that_raises_undoes_it(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    kept, refused = rid(), rid()
    for request_id in (kept, refused):
        await ledger.reserve(account, request_id, 1_000)
    seen: list[str] = []

    def record(conn: Connection) -> None:
        seen.append(type(conn).__name__)

    assert await ledger.settle(account, kept, 400, usage_row(account, kept), also=record) == 400
    assert seen == ["Connection"]

    def refuse(conn: Connection) -> None:
        raise Boom

    with pytest.raises(Boom):
        await ledger.settle(account, refused, 400, usage_row(account, refused), also=refuse)
    assert await ledger.balances(account) == (FUNDS - 400, 1_000)  # still held, nothing charged
    async with engine.connect() as conn:
        rows = (await conn.execute(select(usage.c.request_id).where(usage.c.account_id == account))).all()
    assert [r for (r,) in rows] == [kept]
    assert await ledger.release(refused)
    await assert_invariants(ledger, engine, account)


async def test_a_carved_hold_cannot_be_settled_with_also(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    leased = Ledger(engine, lease_seconds=60, budget_leases=True)
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    try:
        await leased.reserve(account, request_id, 1_000)
        with pytest.raises(ValueError) as info:
            await leased.settle(account, request_id, 10, also=lambda conn: None)
        assert str(info.value) == "a hold settled with `also` must be reserved with carve=False"
        await leased.release(request_id)
    finally:
        await leased.aclose()
    await assert_invariants(ledger, engine, account)


async def test_a_batch_line_admitted_under_budget_leases_holds_per_call_and_settles_with_also(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger
) -> None:
    """A hold whose settlement runs `also` (a batch line's) is never carved from a lease
    (core/admission.py passes carve=False): it settles, with its `also`, as a per-call hold."""
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    calls: list[str] = []
    hold = await admit(
        leased, None, caller, request_id=rid(), model=_model(), endpoint="chat", estimate_nano=1_000,
        settle_also=lambda conn: calls.append("line"),
    )  # fmt: skip
    assert leased.leases.carve_of(hold.request_id) is None
    assert await leased.balances(caller.account_id) == (10_000, 1_000)  # a per-call hold, on the account
    assert await hold.settle(400, provider="p") == 400
    assert calls == ["line"]
    assert await assert_invariants(leased, engine, caller.account_id) == (9_600, 0)


async def test_a_hold_s_settle_also_runs_and_when_it_refuses_the_hold_is_freed(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    calls: list[str] = []
    settled = await _hold(ledger, caller, rid())
    settled.settle_also = lambda conn: calls.append("line")
    assert await settled.settle(1_000, provider="p") == 1_000
    assert calls == ["line"]
    refused = await _hold(ledger, caller, rid())

    def taken(conn: Connection) -> None:
        raise Boom

    refused.settle_also = taken
    with pytest.raises(Boom):
        await refused.settle(1_000, provider="p")
    assert await _rows(engine, refused.request_id) == []
    assert await assert_invariants(ledger, engine, caller.account_id) == (9_000, 0)


async def test_a_hold_s_row_counts_latency_in_milliseconds_and_cuts_the_endpoint_to_its_column(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    hold = await _hold(ledger, caller, rid())
    hold.began = utcnow() - timedelta(seconds=100)
    assert await hold.settle(10, provider="p") == 10  # no units given: none
    [row] = await _rows(engine, hold.request_id)
    assert 100_000 <= row.latency_ms < 100_050
    assert row.units == 0
    with pytest.raises(RuntimeError) as twice:
        await hold.settle(10, provider="p")
    assert str(twice.value) == f"the hold of {hold.request_id} has already ended"
    long = Hold.resume(
        ledger, account_id=caller.account_id, request_id=rid(), key_id=None, key_label=None,
        model_id="m", endpoint="e" * 45, began=utcnow(),
    )  # fmt: skip
    row_of: Any = long.row(provider=None, usage=TokenUsage(), units=0, source="none", outcome="x", status=200)
    assert row_of.endpoint == "e" * 40
