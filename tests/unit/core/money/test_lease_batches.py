"""Settlements from budget leases queued together run set-based (core/money/lease_rows.settle_many,
the Transactor's `many`): one statement per table for the batch. On SQLite and PostgreSQL the books
must come out exactly as settling one by one would; a batch it cannot take (a settlement repeated,
a lease gone) falls back to one by one, each caller getting its own outcome.

PostgreSQL's drainer starts once every caller of a gather has queued, so there the batch is known
to have been taken together (`grouped`); SQLite's writer thread may start on the first caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_leases import lease_rows
from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid, usage_row
from tests.unit.helpers import assert_invariants
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.leases import TARGET_CALLS
from tollway.core.money.ledger import Ledger
from tollway.store.tables import ledger as ledger_table
from tollway.store.tables import usage, usage_daily

HOLD = 1_000
FUNDS = 1_000_000


async def _carved(leased: Ledger, account: str, n: int) -> list[str]:
    ids = [rid() for _ in range(n)]
    for request_id in ids:
        await leased.reserve(account, request_id, HOLD)
        assert leased.leases.carve_of(request_id) is not None
    return ids


async def _usage(engine: AsyncEngine, account: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(usage.c.request_id, usage.c.cost_nano).where(usage.c.account_id == account)
        )
        return {r[0]: int(r[1]) for r in rows}


async def _daily(engine: AsyncEngine, account: str) -> dict[str, tuple[int, int, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                usage_daily.c.key_label,
                usage_daily.c.requests,
                usage_daily.c.prompt_tokens,
                usage_daily.c.completion_tokens,
                usage_daily.c.cost_nano,
            ).where(usage_daily.c.account_id == account)
        )
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


async def test_settlements_queued_together_keep_the_books_as_one_by_one(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    ids = await _carved(leased, account, TARGET_CALLS)
    [(lease_id, amount, _)] = await lease_rows(engine, account)
    costs = [0, HOLD, *(17 * n + 1 for n in range(TARGET_CALLS - 2))]  # the hold's bounds and between
    labels = ["alpha" if n % 3 else "beta" for n in range(TARGET_CALLS)]  # two rollup groups
    rows = [
        usage_row(account, r, key_label=label, prompt_tokens=n, completion_tokens=2 * n)
        for n, (r, label) in enumerate(zip(ids, labels, strict=True))
    ]
    grouped = leased._tx.grouped
    charged = await asyncio.gather(
        *(leased.settle(account, r, cost, row) for r, cost, row in zip(ids, costs, rows, strict=True))
    )
    assert charged == costs
    if engine.dialect.name == "postgresql":
        assert leased._tx.grouped - grouped == TARGET_CALLS
    spent = sum(costs)
    assert await lease_rows(engine, account) == [(lease_id, amount, spent)]
    assert await leased.balances(account) == (FUNDS - spent, amount - spent)
    assert await _usage(engine, account) == dict(zip(ids, costs, strict=True))
    settles = {
        ref: (amt, delta) for kind, amt, delta, ref in await ledger_rows(engine, account) if kind == "settle"
    }
    assert settles == {r: (-cost, -cost) for r, cost in zip(ids, costs, strict=True)}
    expected: dict[str, tuple[int, int, int, int]] = {}
    for n, (label, cost) in enumerate(zip(labels, costs, strict=True)):
        req, prompt, completion, total = expected.get(label, (0, 0, 0, 0))
        expected[label] = (req + 1, prompt + n, completion + 2 * n, total + cost)
    assert await _daily(engine, account) == expected
    await assert_invariants(ledger, engine, account)
    await leased.aclose()
    assert await leased.balances(account) == (FUNDS - spent, 0)
    await assert_invariants(ledger, engine, account)


async def test_a_settlement_repeated_in_the_batch_sends_it_one_by_one_and_charges_once(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    ids = await _carved(leased, account, 6)
    twice = ids[2]
    grouped = leased._tx.grouped
    charged = await asyncio.gather(
        *(leased.settle(account, r, 100 + n, usage_row(account, r)) for n, r in enumerate(ids)),
        leased.settle(account, twice, 500),
    )
    assert charged == [100, 101, 102, 103, 104, 105, 0]
    assert leased._tx.grouped == grouped  # the group was refused and each ran alone
    spent = sum(range(100, 106))
    [(_, amount, consumed)] = await lease_rows(engine, account)
    assert consumed == spent
    assert await leased.balances(account) == (FUNDS - spent, amount - spent)
    assert sorted((await _usage(engine, account)).values()) == list(range(100, 106))
    await assert_invariants(ledger, engine, account)


async def test_settlements_after_their_lease_was_swept_pay_from_the_balance_one_by_one(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """A process cut off past its lease's expiry: another's sweeper returned the lease; its calls'
    late settlements, queued together, cannot be paid by the lease and settle alone from the balance."""
    account = await new_account(accounts_service, credit=FUNDS)
    cut_off = Ledger(engine, lease_seconds=60, budget_leases=True)
    try:
        ids = await _carved(cut_off, account, 5)
        assert await ledger.sweep(now=utcnow() + timedelta(seconds=61)) >= 1
        assert await lease_rows(engine, account) == []
        grouped = cut_off._tx.grouped
        charged = await asyncio.gather(
            *(cut_off.settle(account, r, 300 + n, usage_row(account, r)) for n, r in enumerate(ids))
        )
        assert charged == [300 + n for n in range(5)]
        assert cut_off._tx.grouped == grouped
    finally:
        await cut_off.aclose()
    assert await ledger.balances(account) == (FUNDS - sum(range(300, 305)), 0)
    await assert_invariants(ledger, engine, account)


async def test_keyed_settlements_queued_together_name_their_keys(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    keys = [f"key_{n}_{rid()}" for n in range(3)]
    ids = [rid() for _ in range(6)]
    for n, request_id in enumerate(ids):
        await leased.reserve(account, request_id, HOLD, None, keys[n % 3])
    grouped = leased._tx.grouped
    await asyncio.gather(
        *(leased.settle(account, r, 10 + n, usage_row(account, r)) for n, r in enumerate(ids))
    )
    if engine.dialect.name == "postgresql":
        assert leased._tx.grouped - grouped == len(ids)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_table.c.reference, ledger_table.c.key_id).where(
                ledger_table.c.account_id == account, ledger_table.c.kind == "settle"
            )
        )
        named = dict(rows.all())
    assert named == {r: keys[n % 3] for n, r in enumerate(ids)}
    await assert_invariants(ledger, engine, account)


async def test_settlements_of_a_retired_lease_queued_together_give_back_their_rest_at_once(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """A retired lease keeps only what its calls in flight may spend; each settlement returns its
    unspent hold at once (nothing else of the lease can use it), together or not."""
    account = await new_account(accounts_service, credit=FUNDS)
    ids = await _carved(leased, account, 4)
    carve = leased.leases.carve_of(ids[0])
    assert carve is not None
    await leased.leases._retire(carve.lease)
    [(lease_id, amount, _)] = await lease_rows(engine, account)
    assert amount == 4 * HOLD  # trimmed to what its calls in flight hold
    costs = [0, 1, HOLD // 2]  # three settle together; the fourth call is still in flight
    charged = await asyncio.gather(
        *(leased.settle(account, r, c, usage_row(account, r)) for r, c in zip(ids[:3], costs, strict=True))
    )
    assert charged == costs
    spent = sum(costs)
    # Every unspent nano of the three went back: the lease keeps the fourth call's hold and what it paid.
    assert await lease_rows(engine, account) == [(lease_id, HOLD + spent, spent)]
    assert await leased.balances(account) == (FUNDS - spent, HOLD)
    assert await leased.settle(account, ids[3], HOLD, usage_row(account, ids[3])) == HOLD
    # Its last call settled: nothing of the retired lease is left reserved (its row ends in the background).
    assert [(a, c) for _, a, c in await lease_rows(engine, account)] in ([], [(spent + HOLD, spent + HOLD)])
    assert await leased.balances(account) == (FUNDS - spent - HOLD, 0)
    await assert_invariants(ledger, engine, account)
