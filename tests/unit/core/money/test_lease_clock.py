"""Budget leases against a controlled clock (core/money/leases.py): how a new lease is sized from the
spend this process saw, when a lease is renewed, returned idle or dropped as lost, what a retired
lease's calls pay from, which leases a sweep returns, and what carving does without a transaction.
The mutation run (docs/testing.md) found each of these unpinned by tests/unit/core/money/test_leases.py."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_leases import count, lease_rows
from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid, sweep_everything
from tests.unit.helpers import assert_invariants, seconds_to_expiry
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money import lease_rows as rows_module
from tollway.core.money import leases as leases_module
from tollway.core.money.leases import MIN_CALLS, SPEND_SECONDS, TARGET_CALLS
from tollway.core.money.ledger import Ledger
from tollway.store.tables import budget_leases, reservations
from tollway.store.tables import ledger as ledger_table

HOLD = 1_000
FUNDS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The leases module's time.monotonic, moved by hand."""
    fake = Clock()
    monkeypatch.setattr(leases_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


async def lease_ids(engine: AsyncEngine, account_id: str) -> list[str]:
    return [lid for lid, _, _ in await lease_rows(engine, account_id)]


# -- carving ---------------------------------------------------------------------------------------


async def test_a_carved_hold_reports_the_balance_before_it_and_its_key_reaches_the_settlement(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    key_id = f"key_{secrets.token_hex(4)}"
    first, second = rid(), rid()
    assert (await leased.reserve(account, first, HOLD, key_id=key_id)).available_before_nano == FUNDS
    assert (await leased.reserve(account, second, HOLD, key_id=key_id)).available_before_nano == FUNDS - HOLD
    assert leased.leases.carve_of(first) is not None
    assert await leased.settle(account, first, 300) == 300
    async with engine.connect() as conn:
        keys = (
            await conn.execute(
                select(ledger_table.c.key_id).where(
                    ledger_table.c.account_id == account, ledger_table.c.reference == first
                )
            )
        ).all()
    assert [k for (k,) in keys] == [key_id]  # the spend is the key's, as with a per-call hold
    await leased.release(second)
    await assert_invariants(ledger, engine, account)


async def test_a_carve_from_a_lease_with_room_does_not_wait_for_the_account_s_lease_lock(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """The lock only serialises taking a lease; a call that fits the current one never waits behind
    another call's lease transaction."""
    account = await new_account(accounts_service, credit=FUNDS)
    first, second = rid(), rid()
    await leased.reserve(account, first, HOLD)
    async with leased.leases._locks[account]:
        await asyncio.wait_for(leased.reserve(account, second, HOLD), timeout=2)
    for request_id in (first, second):
        await leased.settle(account, request_id, 10)
    await assert_invariants(ledger, engine, account)


async def test_after_no_lease_fits_the_account_takes_per_call_holds_without_trying_again(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=2 * MIN_CALLS * HOLD - 1)  # half is under MIN_CALLS
    first, second = rid(), rid()
    await leased.reserve(account, first, HOLD)
    batches = leased._tx.batches
    await leased.reserve(account, second, HOLD)
    assert leased._tx.batches == batches + 1  # the hold alone: no lease is tried while cooling off
    assert await count(engine, reservations, account) == 2
    assert await lease_rows(engine, account) == []
    for request_id in (first, second):
        await leased.settle(account, request_id, 10)
    await assert_invariants(ledger, engine, account)


async def test_a_new_lease_row_expires_a_lease_from_now_and_is_named_a_lease(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, HOLD)
    [lease_id] = await lease_ids(engine, account)
    assert lease_id.startswith("lease_")
    assert 55 < await seconds_to_expiry(engine, budget_leases, lease_id) <= 60
    await leased.settle(account, request_id, 10)
    await assert_invariants(ledger, engine, account)


# -- sizing from the spend seen --------------------------------------------------------------------


async def test_a_new_lease_is_sized_from_the_spend_rate_of_the_lease_it_replaces(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """(spent + carved) / age of the retired lease, times SPEND_SECONDS, when that beats TARGET_CALLS
    holds."""
    short = Ledger(engine, lease_seconds=0.3, budget_leases=True)  # carving stops 0.2 s in
    account = await new_account(accounts_service, credit=FUNDS)
    paid, in_flight, later = rid(), rid(), rid()
    try:
        await short.reserve(account, paid, HOLD)
        [first] = await lease_ids(engine, account)
        assert await short.settle(account, paid, 4 * HOLD) == 4 * HOLD  # 3 holds past it, from the room
        await short.reserve(account, in_flight, HOLD)
        clock.now += 0.25  # past the first lease's carving window
        await short.reserve(account, later, HOLD)
        rate = (4 * HOLD + HOLD) / 0.25  # spent + still carved, over the lease's age
        amounts = {lid: amount for lid, amount, _ in await lease_rows(engine, account)}
        [second] = [lid for lid in amounts if lid != first]
        assert int(rate * SPEND_SECONDS) > TARGET_CALLS * HOLD
        assert amounts[second] == int(rate * SPEND_SECONDS)
        for request_id in (in_flight, later):
            await short.settle(account, request_id, 10)
    finally:
        await short.aclose()
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


async def test_a_lease_retired_the_moment_it_was_taken_leaves_the_next_at_its_target(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """No time has passed: there is no rate to learn (and no division by a zero age)."""
    account = await new_account(accounts_service, credit=FUNDS)
    small, big = rid(), rid()
    await leased.reserve(account, small, HOLD)
    await leased.reserve(account, big, TARGET_CALLS * HOLD)  # more than the first lease has left
    assert leased.leases._rate.get(account) is None
    amounts = sorted(amount for _, amount, _ in await lease_rows(engine, account))
    assert amounts == [HOLD, min(TARGET_CALLS * TARGET_CALLS * HOLD, (FUNDS - HOLD) // 2)]
    for request_id in (small, big):
        await leased.settle(account, request_id, 10)
    await assert_invariants(ledger, engine, account)


async def test_a_lease_retired_under_a_second_old_still_teaches_its_rate(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    small, big = rid(), rid()
    await leased.reserve(account, small, HOLD)
    clock.now += 0.5
    await leased.reserve(account, big, TARGET_CALLS * HOLD)
    assert leased.leases._rate[account] == pytest.approx(HOLD / 0.5)
    for request_id in (small, big):
        await leased.settle(account, request_id, 10)
    await assert_invariants(ledger, engine, account)


# -- renewal ---------------------------------------------------------------------------------------


async def test_renewal_keeps_every_recently_used_lease_carving_for_another_window(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """Two accounts' leases, both used 2 s ago (not idle, though nothing is in flight): both are
    renewed, and carve past the window they had before."""
    accounts = [await new_account(accounts_service, credit=FUNDS) for _ in range(2)]
    for account in accounts:
        request_id = rid()
        await leased.reserve(account, request_id, HOLD)
        await leased.settle(account, request_id, 10)
    before = {account: await lease_ids(engine, account) for account in accounts}
    clock.now += 2
    assert await leased.renew() == 2
    for account in accounts:
        assert leased.leases._active[account].valid_until == pytest.approx(clock.now + 40)
    clock.now += 39  # past the first window (40 s from the take), inside the renewed one
    for account in accounts:
        request_id = rid()
        await leased.reserve(account, request_id, HOLD)
        assert await lease_ids(engine, account) == before[account]
        await leased.settle(account, request_id, 10)
        await assert_invariants(ledger, engine, account)


async def test_renewal_skips_a_lease_that_ended_meanwhile_and_renews_the_rest(
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    engine: AsyncEngine,
    accounts_service: Accounts,
    leased: Ledger,
    ledger: Ledger,
) -> None:
    first, second = [await new_account(accounts_service, credit=FUNDS) for _ in range(2)]
    for account in (first, second):
        request_id = rid()
        await leased.reserve(account, request_id, HOLD)
        await leased.settle(account, request_id, 10)
    [gone] = await lease_ids(engine, first)
    renew = rows_module.renew

    def ending_meanwhile(conn: Any, ids: list[str], expires_at: Any) -> list[str]:
        leased.leases._owned.pop(gone)  # the first lease's end finished while the renewal ran
        return renew(conn, ids=ids, expires_at=expires_at)

    monkeypatch.setattr(rows_module, "renew", ending_meanwhile)
    clock.now += 2
    await leased.renew()
    assert leased.leases._active[second].valid_until == pytest.approx(clock.now + 40)
    monkeypatch.setattr(rows_module, "renew", renew)
    leased.leases._owned[gone] = leased.leases._active[first]  # back, so that aclose returns it
    for account in (first, second):
        await assert_invariants(ledger, engine, account)


async def test_a_lease_whose_row_was_swept_stops_carving_and_its_costly_call_returns_the_new_lease(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """A process cut off too long finds its lease swept at the next renewal: the lease is retired
    and forgotten, the next call takes a new one, and a call of the lost lease that costs past its
    hold first gives the new lease back, so it pays from the whole balance as a per-call hold would."""
    account = await new_account(accounts_service, credit=FUNDS)
    in_flight = rid()
    await leased.reserve(account, in_flight, HOLD)
    [lost] = await lease_ids(engine, account)
    lost_lease = leased.leases._active[account]
    await ledger._tx.run(partial(rows_module.end, lease_id=lost, reference=f"{lost}/swept"))
    assert await leased.renew() == 0
    assert lost_lease.retired and lost not in leased.leases._owned
    assert account not in leased.leases._active
    later = rid()
    await leased.reserve(account, later, HOLD)
    [new] = await lease_ids(engine, account)
    assert new != lost
    assert await leased.settle(account, later, 10) == 10
    assert await leased.settle(account, in_flight, 3 * HOLD) == 3 * HOLD  # from the balance
    assert await lease_rows(engine, account) == []  # the new lease went back first
    assert account not in leased.leases._active
    assert await assert_invariants(ledger, engine, account) == (FUNDS - 10 - 3 * HOLD, 0)


async def test_an_idle_lease_with_nothing_in_flight_stays_while_it_was_used_recently(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, HOLD)
    await leased.settle(account, request_id, 10)
    [lease_id] = await lease_ids(engine, account)
    clock.now += leased.leases.idle_seconds - 1
    assert await leased.renew() == 1
    assert await lease_ids(engine, account) == [lease_id]
    clock.now += 2  # now unused for longer than idle_seconds
    assert await leased.renew() == 0
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


async def test_an_idle_return_that_lost_the_race_to_a_new_lease_leaves_the_new_one(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, HOLD)
    await leased.settle(account, request_id, 10)
    clock.now += leased.leases.idle_seconds + 1
    leases = leased.leases
    async with leases._locks[account]:
        renewal = asyncio.create_task(leased.renew())
        await asyncio.sleep(0.05)  # the renewal waits on the account's lock
        fresh = await leases._replace(account, HOLD)  # a call replaced the idle lease meanwhile
    await renewal
    assert fresh is not None and leases._active[account] is fresh
    assert await lease_ids(engine, account) == [fresh.id]
    await assert_invariants(ledger, engine, account)


# -- a retired lease's calls -----------------------------------------------------------------------


async def _retired_with_a_call_in_flight(leased: Ledger, account: str) -> tuple[str, str, str]:
    """(call in flight on the retired lease, its lease, the active lease); the big call that made
    the new lease is released."""
    in_flight, big = rid(), rid()
    await leased.reserve(account, in_flight, HOLD)
    old = leased.leases._active[account].id
    await leased.reserve(account, big, TARGET_CALLS * HOLD)
    new = leased.leases._active[account].id
    assert new != old
    await leased.release(big)
    return in_flight, old, new


async def test_a_retired_lease_s_call_at_its_hold_pays_from_the_lease_and_leaves_the_active_one(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    in_flight, _, new = await _retired_with_a_call_in_flight(leased, account)
    assert await leased.settle(account, in_flight, HOLD) == HOLD
    await asyncio.gather(*leased.leases._ending)
    assert await lease_ids(engine, account) == [new]
    assert leased.leases._active[account].id == new
    settle = [row for row in await ledger_rows(engine, account) if row[0] == "settle"]
    assert settle == [("settle", -HOLD, -HOLD, in_flight)]
    await assert_invariants(ledger, engine, account)


async def test_a_retired_lease_s_costly_call_takes_its_hold_from_the_lease_and_the_rest_from_the_balance(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    """The retired lease's room is not carved again: its row keeps only its calls' holds."""
    account = await new_account(accounts_service, credit=FUNDS)
    in_flight, old, _ = await _retired_with_a_call_in_flight(leased, account)
    assert await leased.settle(account, in_flight, 5 * HOLD) == 5 * HOLD
    await asyncio.gather(*leased.leases._ending)
    entries = [row for row in await ledger_rows(engine, account) if row[3] == in_flight]
    assert entries == [("settle", -5 * HOLD, -HOLD, in_flight)]  # the lease paid its hold
    assert not [row for row in await ledger_rows(engine, account) if row[3] == f"{old}/end"]
    assert await assert_invariants(ledger, engine, account) == (FUNDS - 5 * HOLD, 0)


async def test_an_overrun_carves_exactly_the_overrun_from_the_lease_while_it_settles(
    monkeypatch: pytest.MonkeyPatch,
    engine: AsyncEngine,
    accounts_service: Accounts,
    leased: Ledger,
    ledger: Ledger,
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    over, under = rid(), rid()
    await leased.reserve(account, over, HOLD)
    await leased.reserve(account, under, HOLD)
    seen: list[tuple[int, int]] = []
    settle = rows_module.settle

    def watching(conn: Any, **kwargs: Any) -> tuple[int, int]:
        seen.append((kwargs["hold"], leased.leases._active[account].carved))
        return settle(conn, **kwargs)

    monkeypatch.setattr(rows_module, "settle", watching)
    assert await leased.settle(account, over, 3 * HOLD) == 3 * HOLD
    assert await leased.settle(account, under, HOLD // 2) == HOLD // 2
    assert seen == [(3 * HOLD, 4 * HOLD), (HOLD, HOLD)]  # hold + overrun, carved while it settles
    await assert_invariants(ledger, engine, account)


async def test_a_settlement_that_fails_leaves_the_lease_s_room_whole(
    monkeypatch: pytest.MonkeyPatch,
    engine: AsyncEngine,
    accounts_service: Accounts,
    leased: Ledger,
    ledger: Ledger,
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, HOLD)
    lease = leased.leases._active[account]

    def failing(conn: Any, **kwargs: Any) -> tuple[int, int]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(rows_module, "settle", failing)
    with pytest.raises(RuntimeError):
        await leased.settle(account, request_id, 10)
    assert (lease.carved, lease.spent, lease.room) == (0, 0, lease.amount)
    await assert_invariants(ledger, engine, account)


async def test_two_settlements_of_one_carved_call_at_once_charge_once(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, HOLD)
    charged = await asyncio.gather(*(leased.settle(account, request_id, 300) for _ in range(2)))
    assert sorted(charged) == [0, 300]
    await assert_invariants(ledger, engine, account)


async def test_shutdown_waits_for_a_retired_lease_s_end(
    clock: Clock, engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    in_flight, _, _ = await _retired_with_a_call_in_flight(leased, account)
    clock.now += leased.leases.idle_seconds + 1
    assert await leased.renew() == 1  # the new lease, idle, went back; only the retired one is left
    assert account not in leased.leases._active
    # Past its hold with no active lease to give back first: paid from the balance.
    assert await leased.settle(account, in_flight, 2 * HOLD) == 2 * HOLD
    ending = set(leased.leases._ending)
    assert ending
    await leased.aclose()
    assert all(task.done() for task in ending)
    assert await lease_rows(engine, account) == []
    await assert_invariants(ledger, engine, account)


# -- sweeping --------------------------------------------------------------------------------------


async def test_a_sweep_returns_only_leases_past_their_expiry_and_at_most_its_limit(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    # The counts below are of every lease and hold in the database: first sweep away what earlier tests
    # left (test_lease_rows.py takes leases it never ends).
    await sweep_everything(leased)
    other = Ledger(engine, lease_seconds=60, budget_leases=True)
    accounts = [await new_account(accounts_service, credit=FUNDS) for _ in range(2)]
    try:
        for account in accounts:
            request_id = rid()
            await other.reserve(account, request_id, HOLD)
            await other.settle(account, request_id, 10)
        ids = [(await lease_ids(engine, account))[0] for account in accounts]
        async with engine.connect() as conn:
            expiry = (
                await conn.execute(select(budget_leases.c.expires_at).where(budget_leases.c.id == ids[0]))
            ).scalar_one()
        assert await leased.leases.sweep(utcnow()) == 0  # live leases of another process
        assert await leased.leases.sweep(expiry, limit=10) == 0  # at its expiry, not yet past it
        later = utcnow() + timedelta(minutes=2)
        # Through the Ledger (no hold is past its expiry here): it hands its limit to the leases' sweep.
        assert await leased.sweep(now=later, limit=1) == 1
        assert await leased.sweep(now=later, limit=1) == 1
        assert await leased.sweep(now=later, limit=1) == 0
    finally:
        other.leases._active.clear()
        other.leases._owned.clear()
        await other.aclose()
    for account in accounts:
        assert await lease_rows(engine, account) == []
        await assert_invariants(ledger, engine, account)


async def test_a_second_process_s_lease_is_sized_for_two_processes_sharing_the_account(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """At most available / (2 × processes holding live leases on the account), counting the other
    processes' leases on this account only."""
    credit = 50 * HOLD
    account = await new_account(accounts_service, credit=credit)
    bystander = await new_account(accounts_service, credit=FUNDS)
    ours, theirs = (Ledger(engine, lease_seconds=60, budget_leases=True) for _ in range(2))
    calls = [rid() for _ in range(3)]
    try:
        await theirs.reserve(bystander, calls[0], HOLD)  # the asking process's own, elsewhere
        await ours.reserve(account, calls[1], HOLD)
        first = ours.leases._active[account].amount
        assert first == TARGET_CALLS * HOLD
        await theirs.reserve(account, calls[2], HOLD)
        second = theirs.leases._active[account].amount
        assert second == (credit - first) // 4
        await ours.settle(account, calls[1], 10)
        await theirs.settle(account, calls[2], 10)
        await theirs.settle(bystander, calls[0], 10)
    finally:
        await ours.aclose()
        await theirs.aclose()
    for each in (account, bystander):
        assert await lease_rows(engine, each) == []
        await assert_invariants(ledger, engine, each)


async def test_a_free_call_s_hold_of_nothing_takes_no_lease(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    reservation = await leased.reserve(account, request_id, 0)
    assert reservation.amount_nano == 0
    assert await lease_rows(engine, account) == []
    assert await leased.settle(account, request_id, 0) == 0
    await assert_invariants(ledger, engine, account)
