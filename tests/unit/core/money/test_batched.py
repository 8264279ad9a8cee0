"""Per-call holds and their settlements queued together run set-based (core/money/batched.py, the
Transactor's `many`), on SQLite and PostgreSQL: the books come out exactly as one by one; a group it
cannot take (holds the account cannot fund together, a cost past its hold, a hold already gone, a
request settled twice) runs one by one, each caller getting its own outcome.

PostgreSQL's drainer starts once every caller of a gather has queued, so there the group is known
to have run together (`grouped`); SQLite's writer thread may start on the first caller."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import key_spend_of, ledger_rows, new_account, rid, usage_row
from tests.unit.helpers import assert_invariants
from tollway.base.clock import period_key, utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.caller import KeyLimit
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import reservations, usage

HOLD = 1_000
N = 12


def _pg(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


async def _holds(engine: AsyncEngine, account: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(reservations.c.id, reservations.c.amount_nano).where(reservations.c.account_id == account)
        )
        return {r[0]: int(r[1]) for r in rows}


async def _costs(engine: AsyncEngine, account: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(usage.c.request_id, usage.c.cost_nano).where(usage.c.account_id == account)
        )
        return {r[0]: int(r[1]) for r in rows}


async def test_holds_and_settlements_queued_together_keep_the_books_as_one_by_one(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    funds = 100 * HOLD
    account = await new_account(accounts_service, credit=funds)
    ids = [rid() for _ in range(N)]
    grouped = ledger._tx.grouped
    held = await asyncio.gather(*(ledger.reserve(account, r, HOLD + n) for n, r in enumerate(ids)))
    total = sum(HOLD + n for n in range(N))
    assert [h.amount_nano for h in held] == [HOLD + n for n in range(N)]
    # Each hold saw the account as if the holds were taken one by one, in some order.
    seen = sorted(h.available_before_nano - h.amount_nano for h in held)
    assert seen[0] == funds - total and seen[-1] < funds and len(set(seen)) == N
    assert await _holds(engine, account) == {r: HOLD + n for n, r in enumerate(ids)}
    assert await ledger.balances(account) == (funds, total)
    await assert_invariants(ledger, engine, account)
    costs = [0, HOLD + 1, *(37 * n for n in range(2, N))]  # nothing, the whole hold, and between
    charged = await asyncio.gather(
        *(ledger.settle(account, r, c, usage_row(account, r)) for r, c in zip(ids, costs, strict=True))
    )
    assert charged == costs
    if _pg(engine):
        assert ledger._tx.grouped - grouped == 2 * N
    assert await _holds(engine, account) == {}
    assert await ledger.balances(account) == (funds - sum(costs), 0)
    assert await _costs(engine, account) == dict(zip(ids, costs, strict=True))
    settles = {
        ref: (amount, delta)
        for kind, amount, delta, ref in await ledger_rows(engine, account)
        if kind == "settle"
    }
    assert settles == {r: (-c, -(HOLD + n)) for n, (r, c) in enumerate(zip(ids, costs, strict=True))}
    await assert_invariants(ledger, engine, account)


async def test_holds_the_account_cannot_fund_together_are_decided_one_by_one(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=5 * HOLD)
    outcomes = await asyncio.gather(
        *(ledger.reserve(account, rid(), HOLD) for _ in range(8)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, TollwayError)]
    assert len(outcomes) - len(refused) == 5
    assert {e.code for e in refused} == {ErrorCode.INSUFFICIENT_BALANCE}
    assert await ledger.balances(account) == (5 * HOLD, 5 * HOLD)
    await assert_invariants(ledger, engine, account)


async def test_settlements_it_cannot_take_together_settle_one_by_one(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """In one batch: a cost past its hold (paid from the available balance), a request settled twice
    (charged once), and a key-limited hold (its key_spend row moves with the account's)."""
    funds = 50 * HOLD
    account = await new_account(accounts_service, credit=funds)
    key_id = f"key_{secrets.token_hex(8)}"
    day = period_key("day", utcnow())
    plain, past, limited = rid(), rid(), rid()
    await ledger.reserve(account, plain, HOLD)
    await ledger.reserve(account, past, HOLD)
    await ledger.reserve(account, limited, HOLD, KeyLimit(key_id, 10 * HOLD, "day"), key_id)
    grouped = ledger._tx.grouped
    charged = await asyncio.gather(
        ledger.settle(account, plain, 400, usage_row(account, plain)),
        ledger.settle(account, past, 3 * HOLD, usage_row(account, past)),
        ledger.settle(account, limited, 700, usage_row(account, limited)),
        ledger.settle(account, plain, 400),
    )
    assert sorted(charged) == [0, 400, 700, 3 * HOLD]
    if _pg(engine):
        assert ledger._tx.grouped == grouped  # the group was refused: each ran alone
    assert await ledger.balances(account) == (funds - 400 - 3 * HOLD - 700, 0)
    assert await key_spend_of(engine, key_id) == {day: (700, 0)}
    assert await _costs(engine, account) == {plain: 400, past: 3 * HOLD, limited: 700}
    await assert_invariants(ledger, engine, account)


async def test_key_limited_holds_settled_together_move_their_key_spend_rows_by_the_sums(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=50 * HOLD)
    keys = [f"key_{secrets.token_hex(8)}" for _ in range(2)]
    day = period_key("day", utcnow())
    calls = [(rid(), keys[n % 2]) for n in range(6)]
    for request_id, key_id in calls:
        await ledger.reserve(account, request_id, HOLD, KeyLimit(key_id, 10 * HOLD, "day"), key_id)
    grouped = ledger._tx.grouped
    charged = await asyncio.gather(
        *(ledger.settle(account, r, 100 * (n + 1), usage_row(account, r)) for n, (r, _) in enumerate(calls))
    )
    assert charged == [100 * (n + 1) for n in range(6)]
    if _pg(engine):
        assert ledger._tx.grouped - grouped == 6
    assert await key_spend_of(engine, keys[0]) == {day: (100 + 300 + 500, 0)}
    assert await key_spend_of(engine, keys[1]) == {day: (200 + 400 + 600, 0)}
    assert await ledger.balances(account) == (50 * HOLD - 2100, 0)
    await assert_invariants(ledger, engine, account)
