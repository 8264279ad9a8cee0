"""Assertions shared by the store tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.money.ledger import Ledger
from tollway.store.tables import accounts, budget_leases, reservations


async def open_reserved(engine: AsyncEngine, account_id: str) -> int:
    """What the account's open holds set aside: its reservation rows, plus what its budget leases
    still hold (amount − consumed, core/money/leases.py)."""
    async with engine.connect() as conn:
        held = (
            await conn.execute(
                select(func.coalesce(func.sum(reservations.c.amount_nano), 0)).where(
                    reservations.c.account_id == account_id
                )
            )
        ).scalar_one()
        leased = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(budget_leases.c.amount_nano - budget_leases.c.consumed_nano), 0)
                ).where(budget_leases.c.account_id == account_id)
            )
        ).scalar_one()
    return int(held) + int(leased)


async def assert_invariants(ledger: Ledger, engine: AsyncEngine, account_id: str) -> tuple[int, int]:
    """DESIGN §4: balance = sum(ledger), reserved = sum(reserved deltas) = open holds, available >= 0."""
    balance, reserved = await ledger.balances(account_id)
    assert await ledger.ledger_sums(account_id) == (balance, reserved)
    assert reserved == await open_reserved(engine, account_id)
    assert reserved >= 0
    assert balance - reserved >= 0
    return balance, reserved


async def account_row(engine: AsyncEngine, account_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(accounts).where(accounts.c.id == account_id))).one()


async def seconds_to_expiry(engine: AsyncEngine, table: Any, row_id: str) -> float:
    """Seconds from now to a hold's or a lease's `expires_at` (SQLite hands back naive UTC)."""
    async with engine.connect() as conn:
        expires_at = (await conn.execute(select(table.c.expires_at).where(table.c.id == row_id))).scalar_one()
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
    return float((expires_at - utcnow()).total_seconds())
