"""The ledger on SQLite and PostgreSQL (DESIGN §4, §7): credit, reserve, settle, release, sweep, key limits."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.helpers import assert_invariants, seconds_to_expiry
from tollway.base.clock import period_key, utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.caller import KeyLimit
from tollway.core.money.amounts import MAX_NANO
from tollway.core.money.ledger import CeilingExceeded, Ledger
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts as accounts_table
from tollway.store.tables import key_spend, reservations, usage, usage_daily
from tollway.store.tables import ledger as ledger_table

FAR_FUTURE = utcnow() + timedelta(days=3650)


def rid(tag: str = "req") -> str:
    """Request ids are global primary keys: unique across tests sharing a PostgreSQL database."""
    return f"{tag}_{secrets.token_hex(8)}"


async def sweep_everything(ledger: Ledger) -> int:
    """Sweep as if far in the future until nothing is left: every hold and every other process's lease
    (tests on the shared PostgreSQL database leave some); how many were released."""
    released = 0
    while swept := await ledger.sweep(now=FAR_FUTURE):
        released += swept
    return released


async def new_account(accounts_service: Accounts, credit: int = 0, **kwargs: Any) -> str:
    account = await accounts_service.create(f"unit-{secrets.token_hex(3)}", credit_nano=credit, **kwargs)
    return account.id


async def ledger_rows(engine: AsyncEngine, account_id: str) -> list[tuple[str, int, int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                ledger_table.c.kind,
                ledger_table.c.amount_nano,
                ledger_table.c.reserved_delta_nano,
                ledger_table.c.reference,
            )
            .where(ledger_table.c.account_id == account_id)
            .order_by(ledger_table.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def usage_row(account_id: str, request_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": request_id,
        "account_id": account_id,
        "key_id": None,
        "key_label": "unit",
        "model": "smollm2-135m",
        "endpoint": "chat.completions",
        "provider": "local",
        "prompt_tokens": 1234,
        "completion_tokens": 567,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "units": 0,
        "usage_source": "provider",
        "outcome": "completed",
        "status_code": 200,
        "latency_ms": 42,
        "created_at": utcnow(),
    }
    row.update(overrides)
    return row


async def usage_of(engine: AsyncEngine, request_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(usage).where(usage.c.request_id == request_id))).one_or_none()


# -- credit ----------------------------------------------------------------------------------------


async def test_credit_is_idempotent_by_reference(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service)
    assert await ledger.credit(account, 5_000, reference="topup-1") is True
    assert await ledger.credit(account, 5_000, reference="topup-1") is False
    assert await ledger.credit(account, 9_999, reference="topup-1") is False  # same reference, other amount
    assert await ledger.balances(account) == (5_000, 0)
    assert await ledger.credit(account, 7, reference="topup-2") is True
    # A refund is another kind: the same reference string is a different entry.
    assert await ledger.credit(account, 3, reference="topup-1", kind="refund") is True
    assert await ledger.credit(account, 3, reference="topup-1", kind="refund") is False
    assert await ledger.balances(account) == (5_010, 0)
    assert [r[0] for r in await ledger_rows(engine, account)] == ["credit", "credit", "refund"]
    await assert_invariants(ledger, engine, account)


async def test_initial_credit_goes_through_the_ledger(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000_000)
    assert await ledger.balances(account) == (1_000_000, 0)
    assert await ledger_rows(engine, account) == [("credit", 1_000_000, 0, "initial-credit")]
    await assert_invariants(ledger, engine, account)


async def test_credit_rejects_non_positive_amounts_and_unknown_kinds(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=100)
    # The messages are for the programmer who got it wrong: say what was wrong.
    with pytest.raises(ValueError, match=r"^a credit must be positive$"):
        await ledger.credit(account, 0, reference="zero")
    with pytest.raises(ValueError, match=r"^a credit must be positive$"):
        await ledger.credit(account, -5, reference="neg")
    with pytest.raises(ValueError, match=r"^settle$"):  # the kind it does not take
        await ledger.credit(account, 5, reference="x", kind="settle")
    assert await ledger.balances(account) == (100, 0)
    await assert_invariants(ledger, engine, account)


async def test_racing_credits_cannot_take_a_balance_past_the_ceiling(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """The ceiling is in the credit's own UPDATE: of credits that each fit alone but not together,
    only those that fit are applied, however they interleave."""
    account = await new_account(accounts_service, credit=MAX_NANO - 3 * 1_000)
    results = await asyncio.gather(
        *(ledger.credit(account, 1_000, reference=rid("top-up")) for _ in range(5)), return_exceptions=True
    )
    assert sum(result is True for result in results) == 3
    refused = [result for result in results if result is not True]
    assert all(isinstance(result, CeilingExceeded) and result.args == (account,) for result in refused)
    assert await ledger.balances(account) == (MAX_NANO, 0)
    with pytest.raises(TollwayError) as info:
        await accounts_service.credit(account, 1, reference=rid("top-up"), param="amount_usd")
    assert (info.value.code, info.value.param) == (ErrorCode.VALIDATION, "amount_usd")
    await assert_invariants(ledger, engine, account)


async def test_credit_to_unknown_account_is_not_found(ledger: Ledger) -> None:
    # Not False: False means "this reference was already applied", which would hide a typo in an id.
    unknown = f"acct_{secrets.token_hex(10)}"
    with pytest.raises(TollwayError) as info:
        await ledger.credit(unknown, 100, reference="r1")
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.message.startswith(f"No account {unknown!r}, or ")


async def test_the_balances_of_an_unknown_account_name_it(ledger: Ledger) -> None:
    with pytest.raises(TollwayError) as info:
        await ledger.balances("acct_missing")
    assert (info.value.code, info.value.message) == (ErrorCode.NOT_FOUND, "No account 'acct_missing'.")


async def test_adjust_cannot_make_available_negative(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    await ledger.reserve(account, rid(), 600)
    with pytest.raises(TollwayError) as info:
        await ledger.credit(account, -401, reference="adj-1", kind="adjust")
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.message.endswith(", or the adjustment would make its available balance negative.")
    assert await ledger.balances(account) == (1_000, 600)
    assert await ledger.credit(account, -400, reference="adj-1", kind="adjust") is True
    assert await ledger.balances(account) == (600, 600)
    await assert_invariants(ledger, engine, account)


# -- reserve ---------------------------------------------------------------------------------------


async def test_reserve_holds_money_and_reports_what_was_available(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=10_000)
    first = await ledger.reserve(account, rid(), 3_000)
    assert (first.amount_nano, first.available_before_nano) == (3_000, 10_000)
    second = await ledger.reserve(account, rid(), 7_000)
    assert second.available_before_nano == 7_000
    assert await ledger.balances(account) == (10_000, 10_000)
    await assert_invariants(ledger, engine, account)


async def test_reserve_insufficient_is_402_and_changes_nothing(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000_000_000)  # $1
    await ledger.reserve(account, rid(), 250_000_000)
    before_rows = await ledger_rows(engine, account)
    request_id = rid()
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, request_id, 750_000_001)
    err = info.value
    assert err.code is ErrorCode.INSUFFICIENT_BALANCE
    assert err.status == 402
    assert err.extra["required"] == "0.750000001"
    assert err.extra["available"] == "0.750000000"
    assert err.extra["limit_source"] == "account"
    assert await ledger.balances(account) == (1_000_000_000, 250_000_000)
    assert await ledger_rows(engine, account) == before_rows
    async with engine.connect() as conn:
        held = await conn.execute(select(reservations.c.id).where(reservations.c.id == request_id))
        assert held.first() is None
    # Exactly what is available still works.
    await ledger.reserve(account, request_id, 750_000_000)
    assert await ledger.balances(account) == (1_000_000_000, 1_000_000_000)
    await assert_invariants(ledger, engine, account)


async def test_a_hold_with_a_floor_shrinks_to_what_the_account_has_left(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """`least_nano` (a chat call whose output cap can shrink): the hold takes what is available, if
    that is at least the floor; the ledger entry and the reservation row say the smaller amount."""
    account = await new_account(accounts_service, credit=10_000)
    await ledger.reserve(account, rid(), 4_000)
    request_id = rid()
    shrunk = await ledger.reserve(account, request_id, 9_000, least_nano=5_000)
    assert (shrunk.amount_nano, shrunk.available_before_nano) == (6_000, 6_000)
    assert await ledger.balances(account) == (10_000, 10_000)
    assert (await ledger_rows(engine, account))[-1] == ("reserve", 0, 6_000, request_id)
    async with engine.connect() as conn:
        held = await conn.execute(select(reservations.c.amount_nano).where(reservations.c.id == request_id))
        assert held.scalar_one() == 6_000
    # What fits is held whole, floor or not.
    assert await ledger.release(request_id) is True
    assert (await ledger.reserve(account, rid(), 5_000, least_nano=1)).amount_nano == 5_000
    await assert_invariants(ledger, engine, account)


async def test_a_hold_whose_room_is_below_its_floor_is_402_naming_the_whole_hold(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=10_000)
    before = await ledger_rows(engine, account)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 20_000, least_nano=10_001)
    assert info.value.code is ErrorCode.INSUFFICIENT_BALANCE
    assert (info.value.extra["required"], info.value.extra["available"]) == ("0.000020000", "0.000010000")
    assert await ledger_rows(engine, account) == before
    assert await ledger.balances(account) == (10_000, 0)
    # At the floor exactly, it is held.
    assert (await ledger.reserve(account, rid(), 20_000, least_nano=10_000)).amount_nano == 10_000
    await assert_invariants(ledger, engine, account)


async def test_a_hold_with_a_floor_shrinks_to_the_keys_limit_too(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """The account has room; the key's limit has less: the hold is the key's room, on both."""
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    limit = KeyLimit(key_id, 1_000, "day")
    day = period_key("day", utcnow())
    await ledger.reserve(account, rid(), 300, limit, key_id)
    shrunk = await ledger.reserve(account, rid(), 5_000, limit, key_id, least_nano=700)
    assert (shrunk.amount_nano, shrunk.key_available_before_nano) == (700, 700)
    assert await key_spend_of(engine, key_id) == {day: (0, 1_000)}
    assert await ledger.balances(account) == (1_000_000, 1_000)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 5_000, limit, key_id, least_nano=1)
    assert info.value.code is ErrorCode.KEY_LIMIT_EXCEEDED
    assert (info.value.extra["required"], info.value.extra["available"]) == ("0.000005000", "0.000000000")
    assert await ledger.balances(account) == (1_000_000, 1_000)
    await assert_invariants(ledger, engine, account)


async def test_reserve_on_unknown_account_is_not_found_and_names_it(ledger: Ledger) -> None:
    missing = f"acct_{secrets.token_hex(10)}"
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(missing, rid(), 1)
    assert (info.value.code, info.value.message) == (ErrorCode.NOT_FOUND, f"No account {missing!r}.")


# -- settle and release -------------------------------------------------------------------------------


async def test_settle_charges_the_cost_releases_the_rest_and_writes_usage(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=10_000_000)
    request_id = rid()
    await ledger.reserve(account, request_id, 4_000_000)
    charged = await ledger.settle(account, request_id, 350_200, usage_row(account, request_id))
    assert charged == 350_200
    assert await ledger.balances(account) == (10_000_000 - 350_200, 0)
    assert (await ledger_rows(engine, account))[-1] == ("settle", -350_200, -4_000_000, request_id)
    row = await usage_of(engine, request_id)
    assert row is not None
    assert row.cost_nano == 350_200
    assert (row.account_id, row.prompt_tokens, row.completion_tokens) == (account, 1234, 567)
    assert (row.usage_source, row.outcome, row.status_code) == ("provider", "completed", 200)
    await assert_invariants(ledger, engine, account)


async def test_settle_without_usage_row_writes_none(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    request_id = rid()
    await ledger.reserve(account, request_id, 500)
    assert await ledger.settle(account, request_id, 0) == 0
    assert await ledger.balances(account) == (1_000, 0)
    assert await usage_of(engine, request_id) is None
    await assert_invariants(ledger, engine, account)


async def test_settle_negative_cost_charges_nothing(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    request_id = rid()
    await ledger.reserve(account, request_id, 500)
    assert await ledger.settle(account, request_id, -300) == 0
    assert await ledger.balances(account) == (1_000, 0)
    await assert_invariants(ledger, engine, account)


async def test_settle_above_the_hold_takes_from_available(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    request_id = rid()
    await ledger.reserve(account, request_id, 300)
    assert await ledger.settle(account, request_id, 450) == 450
    assert await ledger.balances(account) == (550, 0)
    await assert_invariants(ledger, engine, account)


async def test_settle_is_capped_at_what_the_account_holds(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    capped, other = rid(), rid()
    await ledger.reserve(account, capped, 300)
    await ledger.reserve(account, other, 200)  # held by another request: not available to `capped`
    # The provider reported far more than the estimate: charge hold + available (300 + 500), not 5000.
    charged = await ledger.settle(account, capped, 5_000, usage_row(account, capped))
    assert charged == 800
    assert await ledger.balances(account) == (200, 200)
    row = await usage_of(engine, capped)
    assert row.cost_nano == 800  # what was charged, not the provider's 5000
    await assert_invariants(ledger, engine, account)
    # The other hold is intact and can still be settled in full.
    assert await ledger.settle(account, other, 200) == 200
    assert await ledger.balances(account) == (0, 0)
    await assert_invariants(ledger, engine, account)
    # An empty account: a late settle charges nothing and never goes negative.
    late = rid()
    with pytest.raises(TollwayError):
        await ledger.reserve(account, late, 1)
    assert await ledger.settle(account, late, 10) == 0
    assert await ledger.balances(account) == (0, 0)
    await assert_invariants(ledger, engine, account)


async def test_release_frees_the_hold_and_charges_nothing(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    request_id = rid()
    await ledger.reserve(account, request_id, 700)
    row = usage_row(account, request_id, outcome="upstream_error", status_code=502, usage_source="none")
    assert await ledger.release(request_id, row) is True
    assert await ledger.balances(account) == (1_000, 0)
    assert (await ledger_rows(engine, account))[-1] == ("release", 0, -700, request_id)
    written = await usage_of(engine, request_id)
    assert (written.cost_nano, written.outcome, written.status_code) == (0, "upstream_error", 502)
    # The day's rollup counts the failed request, at no cost.
    async with engine.connect() as conn:
        rolled = (
            await conn.execute(
                select(usage_daily.c.requests, usage_daily.c.cost_nano).where(
                    usage_daily.c.account_id == account
                )
            )
        ).all()
    assert [tuple(r) for r in rolled] == [(1, 0)]
    await assert_invariants(ledger, engine, account)


async def test_releasing_a_keys_hold_leaves_its_other_periods_alone(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """A key whose limit period changed while a call was in flight (a `total` hold open, then a `day`
    one): freeing the day's hold frees it on the day's key_spend row only."""
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    day = period_key("day", utcnow())
    await ledger.reserve(account, rid(), 300, KeyLimit(key_id, 10_000, "total"), key_id)
    today = rid()
    await ledger.reserve(account, today, 200, KeyLimit(key_id, 10_000, "day"), key_id)
    assert await key_spend_of(engine, key_id) == {"total": (0, 300), day: (0, 200)}
    assert await ledger.release(today) is True
    assert await key_spend_of(engine, key_id) == {"total": (0, 300), day: (0, 0)}
    await assert_invariants(ledger, engine, account)


async def test_double_settle_and_release_are_harmless(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    settled, released = rid(), rid()
    await ledger.reserve(account, settled, 400)
    await ledger.reserve(account, released, 400)
    assert await ledger.settle(account, settled, 100) == 100
    assert await ledger.release(released) is True
    assert await ledger.balances(account) == (900, 0)
    rows = await ledger_rows(engine, account)

    assert await ledger.release(released) is False
    assert await ledger.release(settled) is False  # settled: the hold is gone
    # A second settle of the same request must not charge twice. Today it is refused by the
    # ledger's unique (account, kind, reference) constraint; returning 0 would be fine too.
    try:
        again = await ledger.settle(account, settled, 100)
    except IntegrityError:
        again = 0
    assert again == 0
    assert await ledger.balances(account) == (900, 0)
    assert await ledger_rows(engine, account) == rows
    await assert_invariants(ledger, engine, account)


# -- sweeper ---------------------------------------------------------------------------------------


async def test_sweeper_releases_only_expired_holds(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    short = Ledger(engine, lease_seconds=60)
    try:
        account = await new_account(accounts_service, credit=1_000)
        request_id = rid()
        await short.reserve(account, request_id, 600)
        await short.sweep(now=utcnow())  # not expired yet
        assert await short.balances(account) == (1_000, 600)
        assert await sweep_everything(short) >= 1
        assert await short.balances(account) == (1_000, 0)
        assert (await ledger_rows(engine, account))[-1] == ("release", 0, -600, request_id)
        assert await short.release(request_id) is False
    finally:
        await short.aclose()
    await assert_invariants(ledger, engine, account)


async def test_a_sweep_takes_holds_past_their_expiry_not_at_it_and_at_most_its_limit(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """A hold is live up to its expiry, inclusive. One pass releases at most `limit` holds (200 by
    default): the maintenance loop sweeps every few seconds, so a backlog goes in bounded passes."""
    short = Ledger(engine, lease_seconds=60)
    try:
        await sweep_everything(short)  # what earlier tests left
        account = await new_account(accounts_service, credit=1_000_000)
        holds = [rid() for _ in range(203)]
        await asyncio.gather(*(short.reserve(account, request_id, 10) for request_id in holds))
        expiry = utcnow() + timedelta(seconds=30)
        async with engine.begin() as conn:
            await conn.execute(update(reservations).values(expires_at=expiry))
        assert await short.sweep(now=expiry) == 0  # at its expiry, not yet past it
        later = expiry + timedelta(microseconds=1)
        assert await short.sweep(now=later, limit=2) == 2
        assert await short.sweep(now=later) == 200
        assert await short.sweep(now=later) == 1
        assert await short.sweep(now=later) == 0
        assert await short.balances(account) == (1_000_000, 0)
    finally:
        await short.aclose()
    await assert_invariants(ledger, engine, account)


async def _expiry(engine: AsyncEngine, request_id: str) -> float:
    return await seconds_to_expiry(engine, reservations, request_id)


async def test_renew_extends_the_leases_this_ledger_owns_and_nothing_else(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """Holds are leases: `renew` pushes back the expiry of every live hold this process took, never a
    job's hold (its own long TTL), another process's hold, or a hold that has ended."""
    ours = Ledger(engine, lease_seconds=60)
    other = Ledger(engine, lease_seconds=60)  # another replica on the same database
    try:
        await _renew_only_ours(engine, accounts_service, ledger, ours, other)
    finally:
        await ours.aclose()
        await other.aclose()


async def _renew_only_ours(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger, ours: Ledger, other: Ledger
) -> None:
    await sweep_everything(ours)  # the sweep below counts every hold in the database
    account = await new_account(accounts_service, credit=10_000)
    live, settled, released, job, theirs = rid(), rid(), rid(), rid(), rid()
    for request_id in (live, settled, released):
        await ours.reserve(account, request_id, 100)
    await ours.reserve(account, job, 100, ttl=timedelta(days=30))
    await other.reserve(account, theirs, 100)
    await ours.settle(account, settled, 40)
    await ours.release(released)
    async with engine.begin() as conn:  # 55 s pass: every hold is 5 s from its expiry
        await conn.execute(update(reservations).values(expires_at=utcnow() + timedelta(seconds=5)))
    assert await ours.renew() == 1  # only `live`
    assert 50 < await _expiry(engine, live) <= 60
    assert await _expiry(engine, theirs) <= 5
    assert await _expiry(engine, job) <= 5  # a job's hold is not this process's lease to renew
    # Ten seconds later the sweeper takes every hold nobody renewed, not the renewed one.
    assert await ours.sweep(now=utcnow() + timedelta(seconds=10)) == 2
    async with engine.connect() as conn:
        left = set((await conn.execute(select(reservations.c.id))).scalars())
    assert left == {live}
    await ours.settle(account, live, 100)
    assert await ours.renew() == 0
    await assert_invariants(ledger, engine, account)


async def test_renew_in_batches_extends_every_owned_lease_and_counts_them_all(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """Five holds renewed two at a time: every one is pushed back, and the count is all five."""
    ours = Ledger(engine, lease_seconds=60)
    account = await new_account(accounts_service, credit=10_000)
    owned = [rid() for _ in range(5)]
    for request_id in owned:
        await ours.reserve(account, request_id, 100)
    async with engine.begin() as conn:
        await conn.execute(update(reservations).values(expires_at=utcnow() + timedelta(seconds=5)))
    assert await ours.renew(batch=2) == 5
    for request_id in owned:
        assert 50 < await _expiry(engine, request_id) <= 60
    for request_id in owned:
        await ours.release(request_id)
    await assert_invariants(ledger, engine, account)


async def test_a_ledger_whose_holds_all_ended_renews_nothing(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    """Settled and released holds are forgotten: renew sends the database nothing for them (a
    forgotten id would be renewed, in vain, every lease for as long as the process lives)."""
    ours = Ledger(engine, lease_seconds=60)
    account = await new_account(accounts_service, credit=10_000)
    settled, released = rid(), rid()
    await ours.reserve(account, settled, 100)
    await ours.reserve(account, released, 100)
    await ours.settle(account, settled, 40)
    await ours.release(released)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    # Every engine: on SQLite the ledger writes through an engine of its own (store/db.py Transactor).
    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert await ours.renew() == 0
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert [s for s in statements if "reservations" in s] == []
    await assert_invariants(ledger, engine, account)


async def test_settle_after_sweep_charges_from_available_without_going_negative(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    slow, other = rid(), rid()
    await ledger.reserve(account, slow, 600)
    await sweep_everything(ledger)
    assert await ledger.balances(account) == (1_000, 0)
    await ledger.reserve(account, other, 700)  # the freed money was taken by another request
    # The slow call finally finishes and costs 500; only 300 is available.
    assert await ledger.settle(account, slow, 500) == 300
    assert await ledger.balances(account) == (700, 700)
    await assert_invariants(ledger, engine, account)
    assert await ledger.settle(account, other, 700) == 700
    assert await ledger.balances(account) == (0, 0)
    await assert_invariants(ledger, engine, account)


# -- per-key consumption limits ----------------------------------------------------------------------


async def key_spend_of(engine: AsyncEngine, key_id: str) -> dict[str, tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(key_spend.c.period, key_spend.c.spent_nano, key_spend.c.reserved_nano).where(
                key_spend.c.key_id == key_id
            )
        )
        return {r.period: (r.spent_nano, r.reserved_nano) for r in rows}


async def test_key_limit_is_a_second_reservation(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    limit = KeyLimit(key_id, 1_000, "day")
    day = period_key("day", utcnow())
    first = rid()
    await ledger.reserve(account, first, 600, limit, key_id)
    assert await key_spend_of(engine, key_id) == {day: (0, 600)}

    rows_before = await ledger_rows(engine, account)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 401, limit, key_id)
    err = info.value
    assert err.code is ErrorCode.KEY_LIMIT_EXCEEDED
    assert err.status == 402
    assert err.extra == {"required": "0.000000401", "available": "0.000000400", "limit_source": "key_limit"}
    # The account side was rolled back with the key side.
    assert await ledger.balances(account) == (1_000_000, 600)
    assert await ledger_rows(engine, account) == rows_before
    assert await key_spend_of(engine, key_id) == {day: (0, 600)}

    assert await ledger.settle(account, first, 250) == 250
    assert await key_spend_of(engine, key_id) == {day: (250, 0)}
    second = rid()
    await ledger.reserve(account, second, 750, limit, key_id)  # 250 spent + 750 = the limit exactly
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 1, limit, key_id)
    assert info.value.code is ErrorCode.KEY_LIMIT_EXCEEDED
    assert await ledger.settle(account, second, 100) == 100
    third = rid()
    await ledger.reserve(account, third, 50, limit, key_id)
    assert await ledger.release(third) is True
    assert await key_spend_of(engine, key_id) == {day: (350, 0)}
    assert await ledger.balances(account) == (1_000_000 - 350, 0)
    await assert_invariants(ledger, engine, account)


async def test_one_keys_spend_never_touches_another_keys(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """Two limited keys in the same period: holds, settlements and releases stay on their own row."""
    account = await new_account(accounts_service, credit=1_000_000)
    day = period_key("day", utcnow())
    a, b = (f"key_{secrets.token_hex(8)}" for _ in range(2))
    await ledger.reserve(account, rid(), 10, KeyLimit(b, 1_000, "day"), b)  # b's row exists
    held, spent = rid(), rid()
    await ledger.reserve(account, held, 700, KeyLimit(a, 1_000, "day"), a)
    await ledger.reserve(account, spent, 200, KeyLimit(a, 1_000, "day"), a)
    assert await key_spend_of(engine, b) == {day: (0, 10)}
    await ledger.settle(account, spent, 150)
    assert await ledger.release(held) is True
    assert await key_spend_of(engine, a) == {day: (150, 0)}
    assert await key_spend_of(engine, b) == {day: (0, 10)}
    await ledger.reserve(account, rid(), 990, KeyLimit(b, 1_000, "day"), b)  # b's whole limit is b's
    [release] = [r for r in await ledger_rows(engine, account) if r[0] == "release"]
    async with engine.connect() as conn:
        [key_of_release] = (
            await conn.execute(
                select(ledger_table.c.key_id).where(
                    ledger_table.c.reference == held, ledger_table.c.kind == "release"
                )
            )
        ).scalars()
    assert release[3] == held and key_of_release == a
    await assert_invariants(ledger, engine, account)


async def test_key_spend_is_kept_per_period(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    now = utcnow()
    for period, cost in (("total", 10), ("month", 20), ("week", 30), ("day", 40), ("total", 5)):
        request_id = rid()
        await ledger.reserve(account, request_id, 100, KeyLimit(key_id, 10_000, period), key_id)
        assert await ledger.settle(account, request_id, cost) == cost
    assert await key_spend_of(engine, key_id) == {
        "total": (15, 0),
        period_key("month", now): (20, 0),
        period_key("week", now): (30, 0),
        period_key("day", now): (40, 0),
    }
    # A limit that another period has used up does not touch this period's room.
    await ledger.reserve(account, rid(), 10_000 - 40, KeyLimit(key_id, 10_000, "day"), key_id)
    await assert_invariants(ledger, engine, account)


async def test_a_key_refused_in_one_period_names_that_periods_room_only(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """A key with spend in another period too (its limit's period changed): the 402 counts what is
    left of this period's limit, not a sum or a mix of the periods' rows."""
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    total = rid()
    await ledger.reserve(account, total, 300, KeyLimit(key_id, 10_000, "total"), key_id)
    await ledger.settle(account, total, 300)
    await ledger.reserve(account, rid(), 600, KeyLimit(key_id, 1_000, "day"), key_id)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 500, KeyLimit(key_id, 1_000, "day"), key_id)
    assert info.value.code is ErrorCode.KEY_LIMIT_EXCEEDED
    assert (info.value.extra["required"], info.value.extra["available"]) == ("0.000000500", "0.000000400")
    await assert_invariants(ledger, engine, account)


async def test_key_limit_hold_is_released_by_the_sweeper(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000_000)
    key_id = f"key_{secrets.token_hex(8)}"
    limit = KeyLimit(key_id, 1_000, "total")
    await ledger.reserve(account, rid(), 1_000, limit, key_id)
    await sweep_everything(ledger)
    assert await key_spend_of(engine, key_id) == {"total": (0, 0)}
    await ledger.reserve(account, rid(), 1_000, limit, key_id)
    await assert_invariants(ledger, engine, account)


async def test_database_refuses_a_negative_reservation(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    """Defence in depth: the reserved_nonnegative CHECK holds even against a direct write. (available >= 0
    is no CHECK since migration 0011, a card refund may go below: holds and settlements keep it,
    tests/unit/core/money/test_funding_debits.py.)"""

    account = await new_account(accounts_service, credit=100)
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                accounts_table.update().where(accounts_table.c.id == account).values(reserved_nano=-1)
            )
    async with engine.connect() as conn:
        count = await conn.execute(
            select(func.count()).select_from(ledger_table).where(ledger_table.c.account_id == account)
        )
        assert count.scalar_one() == 1
    await assert_invariants(ledger, engine, account)
