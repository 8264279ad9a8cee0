"""core/money/invariants.py: the production ledger check counts accounts whose balance or reserved
disagrees with their ledger or their live holds, and replicas share one check per interval."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money import invariants
from tollway.core.money.ledger import Ledger
from tollway.store.tables import accounts, reservations, server_state


async def new_account(accounts_service: Accounts, credit: int) -> str:
    return (await accounts_service.create(f"unit-{secrets.token_hex(3)}", credit_nano=credit)).id


async def execute(engine: AsyncEngine, statement: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(statement)  # type: ignore[call-overload]


async def test_an_honest_ledger_has_no_violation_and_each_kind_of_lie_counts_once(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    rich = await new_account(accounts_service, 10_000)
    held = await new_account(accounts_service, 10_000)
    await ledger.reserve(held, f"req-{secrets.token_hex(4)}", 600, carve=False)  # a live per-call hold
    base = await invariants.violations(engine)  # PostgreSQL's unit database is shared by the session

    # A balance moved without a ledger entry.
    await execute(
        engine, update(accounts).where(accounts.c.id == rich).values(balance_nano=accounts.c.balance_nano + 1)
    )
    assert await invariants.violations(engine) == base + 1
    # A hold's row gone while the account still reserves it (its ledger agrees: only the holds tell).
    await execute(engine, reservations.delete().where(reservations.c.account_id == held))
    assert await invariants.violations(engine) == base + 2
    # Put back as a hold of the same amount: that account is whole again.
    await execute(
        engine,
        insert(reservations).values(
            id="req-back", account_id=held, amount_nano=600, expires_at=utcnow(), key_id=None, key_period=None
        ),
    )
    assert await invariants.violations(engine) == base + 1


async def test_replicas_share_one_check_per_interval(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    real = invariants.violations

    async def counted(engine: AsyncEngine) -> int:
        runs.append(1)
        return await real(engine)

    monkeypatch.setattr(invariants, "violations", counted)
    await execute(engine, server_state.delete().where(server_state.c.name == invariants.STATE))
    assert await invariants.last_check(engine) == invariants.NEVER
    base = await real(engine)
    first = await invariants.check_due(engine, 60.0, now=1_000.0)
    assert (first.violations, first.checked_at, first.claimed_at, len(runs)) == (base, 1_000.0, 1_000.0, 1)
    # Another replica, or this one again, within the interval: the stored result, no second run.
    again = await invariants.check_due(engine, 60.0, now=1_030.0)
    assert again == first and len(runs) == 1
    account = await new_account(accounts_service, 10)
    await execute(engine, update(accounts).where(accounts.c.id == account).values(balance_nano=11))
    later = await invariants.check_due(engine, 60.0, now=1_061.0)
    assert (later.violations, len(runs)) == (base + 1, 2)
    assert later.checked_at >= first.checked_at
    # A claim that lost its compare-and-swap (another replica claimed first) does not run the check.
    stale = invariants.LastCheck(0.0, -1, 0.0)
    monkeypatch.setattr(invariants, "last_check", _returning_then_real(stale, invariants.last_check))
    assert await invariants.check_due(engine, 60.0, now=5_000.0) == later
    assert len(runs) == 2


def _returning_then_real(first: invariants.LastCheck, real):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    async def last_check(engine: AsyncEngine) -> invariants.LastCheck:
        calls.append(1)
        return first if len(calls) == 1 else await real(engine)

    return last_check
