"""Budget leases (core/money/leases.py) on SQLite and PostgreSQL: holds carved in memory from a
per-process slice of the balance, settled exactly once, returned on retirement, idleness, shutdown
and, for a crashed process, by another process's sweeper."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid, usage_row
from tests.unit.helpers import assert_invariants, seconds_to_expiry
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.caller import KeyLimit
from tollway.core.money.leases import MIN_CALLS, TARGET_CALLS
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import budget_leases, reservations, usage

HOLD = 1_000
FUNDS = 1_000_000  # half of it is 500 holds: a first lease is TARGET_CALLS holds


async def lease_rows(engine: AsyncEngine, account_id: str) -> list[tuple[str, int, int]]:
    """(id, amount, consumed) of the account's lease rows."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(budget_leases.c.id, budget_leases.c.amount_nano, budget_leases.c.consumed_nano).where(
                budget_leases.c.account_id == account_id
            )
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]


async def count(engine: AsyncEngine, table: Any, account_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(table).where(table.c.account_id == account_id)
                )
            ).scalar_one()
        )


async def test_calls_after_the_first_are_admitted_without_a_transaction_and_settled_from_the_lease(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    first = rid()
    await leased.reserve(account, first, HOLD)
    [(lease_id, amount, consumed)] = await lease_rows(engine, account)
    assert (amount, consumed) == (HOLD * TARGET_CALLS, 0)
    batches = leased._tx.batches
    others = [rid() for _ in range(TARGET_CALLS - 1)]  # the lease has room for exactly these
    for request_id in others:
        reservation = await leased.reserve(account, request_id, HOLD)
        assert reservation.amount_nano == HOLD
    assert leased._tx.batches == batches  # no database work to admit them
    assert await count(engine, reservations, account) == 0
    assert await leased.balances(account) == (FUNDS, HOLD * TARGET_CALLS)
    # Each settles from the lease: the account pays the cost, the lease counts it as consumed.
    for n, request_id in enumerate([first, *others]):
        assert await leased.settle(account, request_id, 100 + n, usage_row(account, request_id)) == 100 + n
    spent = sum(100 + n for n in range(TARGET_CALLS))
    assert await lease_rows(engine, account) == [(lease_id, HOLD * TARGET_CALLS, spent)]
    assert await leased.balances(account) == (FUNDS - spent, HOLD * TARGET_CALLS - spent)
    assert await count(engine, usage, account) == TARGET_CALLS
    kinds = [row[0] for row in await ledger_rows(engine, account)]
    assert kinds == ["credit", "lease", *["settle"] * TARGET_CALLS]
    await assert_invariants(ledger, engine, account)
    # At shutdown the lease goes back: nothing stays reserved.
    await leased.aclose()
    assert await leased.balances(account) == (FUNDS - spent, 0)
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


async def test_a_second_settlement_charges_nothing_and_a_release_frees_the_hold(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    settled, released = rid(), rid()
    await leased.reserve(account, settled, HOLD)
    await leased.reserve(account, released, HOLD)
    assert await leased.settle(account, settled, 300) == 300
    assert await leased.settle(account, settled, 300) == 0
    assert await leased.release(released, usage_row(account, released)) is True
    [(_, amount, consumed)] = await lease_rows(engine, account)
    assert consumed == 300
    assert await leased.balances(account) == (FUNDS - 300, amount - 300)
    async with engine.connect() as conn:
        costs = (await conn.execute(select(usage.c.cost_nano).where(usage.c.account_id == account))).all()
    assert [c for (c,) in costs] == [0]
    assert leased.leases._active[account].room == amount - 300  # both holds are back in the lease
    await assert_invariants(ledger, engine, account)


async def test_a_cost_past_the_hold_is_paid_from_the_lease_then_the_balance_and_never_past_them(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """As with a per-call hold, a call whose cost passes its hold pays it from what the account
    has left, here first the lease's room, then the balance beside the lease, and never more."""
    account = await new_account(accounts_service, credit=FUNDS)
    over, way_over = rid(), rid()
    await leased.reserve(account, over, HOLD)
    [(lease_id, amount, _)] = await lease_rows(engine, account)
    assert await leased.settle(account, over, HOLD + 500) == HOLD + 500  # 500 beyond its hold
    assert await lease_rows(engine, account) == [(lease_id, amount, HOLD + 500)]
    assert await leased.balances(account) == (FUNDS - HOLD - 500, amount - HOLD - 500)
    await leased.reserve(account, way_over, HOLD)
    assert await leased.settle(account, way_over, 10 * FUNDS) == FUNDS - HOLD - 500  # all there was
    assert await lease_rows(engine, account) == [(lease_id, amount, amount)]
    assert await assert_invariants(ledger, engine, account) == (0, 0)


async def test_a_lease_that_cannot_cover_a_call_is_trimmed_to_its_calls_in_flight_and_ended_after_them(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    in_flight = rid()
    await leased.reserve(account, in_flight, HOLD)
    [(old, amount, _)] = await lease_rows(engine, account)
    big = rid()
    await leased.reserve(account, big, amount)  # more than the old lease has left: a new lease
    rows = dict((lid, (a, c)) for lid, a, c in await lease_rows(engine, account))
    assert rows[old] == (HOLD, 0)  # trimmed to the one hold still in flight
    [new] = [lid for lid in rows if lid != old]
    assert rows[new][0] >= amount * MIN_CALLS
    await assert_invariants(ledger, engine, account)
    assert await leased.settle(account, in_flight, 400) == 400
    await asyncio.gather(*leased.leases._ending)  # the old lease ends once its last call has
    assert [lid for lid, _, _ in await lease_rows(engine, account)] == [new]
    refs = [
        (kind, delta, ref) for kind, _, delta, ref in await ledger_rows(engine, account) if kind == "unlease"
    ]
    assert refs == [
        ("unlease", -(amount - HOLD), f"{old}/trim"),
        ("unlease", -(HOLD - 400), f"{old}/{in_flight}"),
    ]
    await leased.release(big)
    await assert_invariants(ledger, engine, account)


async def test_a_low_balance_falls_back_to_per_call_holds_after_giving_back_this_process_s_lease(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """The account's money sits in the process's lease; a call that needs most of the balance still
    gets it (the idle lease goes back first), and a call past the balance is a 402 as ever."""
    account = await new_account(accounts_service, credit=100 * HOLD)
    small = rid()
    await leased.reserve(account, small, HOLD)
    [(_, amount, _)] = await lease_rows(engine, account)
    assert amount == HOLD * TARGET_CALLS
    await leased.settle(account, small, HOLD)
    large = rid()
    reservation = await leased.reserve(account, large, 99 * HOLD)  # all that is left
    assert reservation.available_before_nano == 99 * HOLD
    assert await lease_rows(engine, account) == []  # the lease went back; a per-call hold instead
    assert await count(engine, reservations, account) == 1
    with pytest.raises(TollwayError) as refused:
        await leased.reserve(account, rid(), 1)
    assert refused.value.code == ErrorCode.INSUFFICIENT_BALANCE
    await leased.settle(account, large, 99 * HOLD)
    assert await assert_invariants(ledger, engine, account) == (0, 0)


async def test_holds_that_must_outlive_the_process_or_count_against_a_key_are_not_carved(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    job, limited = rid(), rid()
    await leased.reserve(account, job, HOLD, ttl=timedelta(days=3))
    key_id = f"key_{secrets.token_hex(4)}"
    await leased.reserve(account, limited, HOLD, KeyLimit(key_id, FUNDS, "day"), key_id=key_id)
    assert await lease_rows(engine, account) == []
    assert await count(engine, reservations, account) == 2
    await leased.settle(account, job, 10)
    await leased.settle(account, limited, 10)
    await assert_invariants(ledger, engine, account)


async def test_an_idle_lease_goes_back_at_the_next_renewal_and_a_busy_one_is_renewed(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    idle, busy = [await new_account(accounts_service, credit=FUNDS) for _ in range(2)]
    calls = {account: rid() for account in (idle, busy)}
    for account, request_id in calls.items():
        await leased.reserve(account, request_id, HOLD)
    await leased.settle(idle, calls[idle], 10)
    leased.leases.idle_seconds = 0.0
    await asyncio.sleep(0.01)
    assert await leased.renew() == 1  # the busy one's row, pushed back a lease
    assert await lease_rows(engine, idle) == []
    assert await leased.balances(idle) == (FUNDS - 10, 0)
    [(busy_lease, _, _)] = await lease_rows(engine, busy)
    assert 50 < await seconds_to_expiry(engine, budget_leases, busy_lease) <= 60
    await leased.settle(busy, calls[busy], 10)
    for account in (idle, busy):
        await assert_invariants(ledger, engine, account)


async def test_a_crashed_process_s_lease_is_returned_by_another_s_sweeper_and_a_late_settle_still_pays(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """The crashed process never renews or returns its lease; one lease later another process's
    sweeper returns exactly amount − consumed. Its own sweeps never take its live leases."""
    account = await new_account(accounts_service, credit=FUNDS)
    crashed = Ledger(engine, lease_seconds=60, budget_leases=True)
    settled, in_flight = rid(), rid()
    await crashed.reserve(account, settled, HOLD)
    await crashed.reserve(account, in_flight, HOLD)
    await crashed.settle(account, settled, 250)
    await crashed._tx.aclose()  # it dies: its transactor stops; its lease is neither renewed nor returned
    [(lease_id, amount, consumed)] = await lease_rows(engine, account)
    assert consumed == 250
    later = utcnow() + timedelta(seconds=61)
    await crashed.leases.sweep(later)  # a process never sweeps its own leases: it is alive
    assert await lease_rows(engine, account) == [(lease_id, amount, 250)]
    assert await leased.sweep(now=later) >= 1
    assert await lease_rows(engine, account) == []
    assert await leased.balances(account) == (FUNDS - 250, 0)
    refs = [(kind, delta, ref) for kind, _, delta, ref in await ledger_rows(engine, account)]
    assert refs[-1] == ("unlease", -(amount - 250), f"{lease_id}/swept")
    await assert_invariants(ledger, engine, account)
    # A settlement that comes after the sweep (the process was only cut off) pays from the balance.
    revived = Ledger(engine, lease_seconds=60, budget_leases=True)
    try:
        revived.leases._carves = crashed.leases._carves
        assert await revived.settle(account, in_flight, 700) == 700
    finally:
        await revived.aclose()
    assert await leased.balances(account) == (FUNDS - 950, 0)
    await assert_invariants(ledger, engine, account)


async def test_a_lease_near_its_expiry_is_no_longer_carved_from(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """Carving stops a third of a lease before the row could be swept unrenewed: a process cut off
    from the database does not go on spending a lease another process may return."""
    short = Ledger(engine, lease_seconds=0.3, budget_leases=True)
    account = await new_account(accounts_service, credit=FUNDS)
    early, late = rid(), rid()
    try:
        await short.reserve(account, early, HOLD)
        [(first, _, _)] = await lease_rows(engine, account)
        await asyncio.sleep(0.25)
        await short.reserve(account, late, HOLD)
        assert short.leases._active[account].id != first
        rows = {lid: amount for lid, amount, _ in await lease_rows(engine, account)}
        assert rows[first] == HOLD  # retired, kept for its one call in flight
        await short.settle(account, early, 10)
        await short.settle(account, late, 10)
    finally:
        await short.aclose()
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


# -- under contention ------------------------------------------------------------------------------

FUNDED = 20
ATTEMPTS = 200
AMOUNT = 1_234_567


async def _race(ledgers: list[Ledger], account: str, tag: str) -> tuple[list[str], list[TollwayError]]:
    """ATTEMPTS holds of AMOUNT at once, spread over the ledgers (processes): (held ids, refusals)."""

    async def one(i: int) -> str:
        request_id = f"lease_{tag}_{i}"
        await ledgers[i % len(ledgers)].reserve(account, request_id, AMOUNT)
        return request_id

    results = await asyncio.gather(*(one(i) for i in range(ATTEMPTS)), return_exceptions=True)
    unexpected = [r for r in results if not isinstance(r, str | TollwayError)]
    assert unexpected == []
    return [r for r in results if isinstance(r, str)], [r for r in results if isinstance(r, TollwayError)]


async def test_two_hundred_holds_at_once_from_leases_grant_exactly_what_the_balance_funds(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """One process: leases shrink as the balance runs down (10, then 5 holds' worth), then per-call
    holds take the rest, so exactly the funded number of holds is granted and every other is a 402."""
    initial = FUNDED * AMOUNT
    account = await new_account(accounts_service, credit=initial)
    held, refused = await _race([leased], account, secrets.token_hex(6))
    assert len(held) == FUNDED and len(refused) == ATTEMPTS - FUNDED
    assert {e.code for e in refused} == {ErrorCode.INSUFFICIENT_BALANCE}
    assert 0 < len([r for r in held if leased.leases.carve_of(r)]) < FUNDED  # both kinds of hold
    assert await leased.balances(account) == (initial, initial)
    await assert_invariants(ledger, engine, account)
    to_settle, to_release = held[: FUNDED // 2], held[FUNDED // 2 :]
    outcomes = await asyncio.gather(
        *(leased.settle(account, r, AMOUNT // 3) for r in to_settle), *(leased.release(r) for r in to_release)
    )
    assert outcomes == [AMOUNT // 3] * len(to_settle) + [True] * len(to_release)
    await asyncio.gather(*leased.leases._ending)  # retired leases end once their last call has
    await assert_invariants(ledger, engine, account)
    await leased.aclose()
    assert await leased.balances(account) == (initial - len(to_settle) * (AMOUNT // 3), 0)
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


async def test_two_processes_with_leases_never_overdraw_and_keep_the_books(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """Two processes on one database, each with its own leases, 200 calls of one account at once
    with a top-up racing them: never more holds than the money funds, one settlement per call, and
    every lease goes back at shutdown."""
    initial = FUNDED * AMOUNT
    account = await new_account(accounts_service, credit=initial)
    ours, theirs = (Ledger(engine, lease_seconds=60, budget_leases=True) for _ in range(2))
    tag = secrets.token_hex(6)
    try:
        (held, refused), credited = await asyncio.gather(
            _race([ours, theirs], account, tag),
            asyncio.gather(*(ours.credit(account, AMOUNT, reference=f"top_{tag}") for _ in range(3))),
        )
        assert sorted(credited) == [False, False, True]
        assert FUNDED // 2 <= len(held) <= FUNDED + 1 and len(held) + len(refused) == ATTEMPTS
        await assert_invariants(ledger, engine, account)
        # Each call is settled by the process that took its hold (_race: even calls went to ours).
        by = {r: ours if int(r.rsplit("_", 1)[1]) % 2 == 0 else theirs for r in held}
        charged = await asyncio.gather(*(by[r].settle(account, r, AMOUNT // 2) for r in held))
        assert charged == [AMOUNT // 2] * len(held)
        assert await ours.settle(account, held[0], AMOUNT) == 0  # settled once
    finally:
        await ours.aclose()
        await theirs.aclose()
    assert await lease_rows(engine, account) == []
    assert await ledger.balances(account) == (initial + AMOUNT - len(held) * (AMOUNT // 2), 0)
    await assert_invariants(ledger, engine, account)
