"""The ledger's invariants, checked in production (DESIGN §4; issue 26's ledger-invariant alert).

For every account, in one statement (one snapshot, so calls settling meanwhile cannot fake a
difference): its balance is the sum of its ledger amounts, its reserved is the sum of its ledger
reserved deltas, and that reserved is exactly what its live holds set aside — its reservation rows
plus what its budget leases still hold (amount − consumed, core/money/leases.py). (That neither goes
below zero, nor reserved past the balance, the tables' CHECKs enforce.) An account breaking any of these is one violation.

The check reads the whole ledger, so replicas share it: every replica's maintenance loop asks
`check_due` each sweep, and the one whose compare-and-swap on the `ledger_check` row of
server_state wins runs it; the row then holds the latest result (when, how many violations) and
every replica exports that row (`tollway_ledger_invariant_violations`,
`tollway_ledger_invariant_last_check_timestamp_seconds`), so their gauges agree. A claimant that
dies mid-check leaves the timestamp unchanged: the staleness alert notices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.server_state import write_once
from tollway.store.tables import accounts, budget_leases, ledger, reservations, server_state

STATE = "ledger_check"  # server_state row: "<checked at> <violations> <claimed at>", epoch seconds


@dataclass(frozen=True, slots=True)
class LastCheck:
    checked_at: float  # 0: never
    violations: int  # -1: never checked
    claimed_at: float

    def render(self) -> str:
        return f"{self.checked_at:.3f} {self.violations} {self.claimed_at:.3f}"

    @classmethod
    def parse(cls, value: str) -> LastCheck:
        checked, violations, claimed = value.split()
        return cls(float(checked), int(violations), float(claimed))


NEVER = LastCheck(0.0, -1, 0.0)


async def violations(engine: AsyncEngine) -> int:
    """The number of accounts whose balance or reserved disagrees with their ledger or their holds."""
    sums = (
        select(
            ledger.c.account_id,
            func.sum(ledger.c.amount_nano).label("amount"),
            func.sum(ledger.c.reserved_delta_nano).label("reserved"),
        )
        .group_by(ledger.c.account_id)
        .subquery()
    )
    held = (
        select(reservations.c.account_id, func.sum(reservations.c.amount_nano).label("held"))
        .group_by(reservations.c.account_id)
        .subquery()
    )
    leased = (
        select(
            budget_leases.c.account_id,
            func.sum(budget_leases.c.amount_nano - budget_leases.c.consumed_nano).label("leased"),
        )
        .group_by(budget_leases.c.account_id)
        .subquery()
    )
    reserved = accounts.c.reserved_nano
    query = (
        select(func.count())
        .select_from(
            accounts.outerjoin(sums, sums.c.account_id == accounts.c.id)
            .outerjoin(held, held.c.account_id == accounts.c.id)
            .outerjoin(leased, leased.c.account_id == accounts.c.id)
        )
        .where(
            or_(
                accounts.c.balance_nano != func.coalesce(sums.c.amount, 0),
                reserved != func.coalesce(sums.c.reserved, 0),
                reserved != func.coalesce(held.c.held, 0) + func.coalesce(leased.c.leased, 0),
            )
        )
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def last_check(engine: AsyncEngine) -> LastCheck:
    return LastCheck.parse(await write_once(engine, STATE, NEVER.render()))


async def check_due(engine: AsyncEngine, interval: float, now: float | None = None) -> LastCheck:
    """Run the check if no replica has run or claimed it within `interval` seconds and this one wins
    the claim; return the latest result, this replica's or another's."""
    now = time.time() if now is None else now
    last = await last_check(engine)
    if now - max(last.checked_at, last.claimed_at) < interval:
        return last
    claimed = LastCheck(last.checked_at, last.violations, now)
    async with engine.begin() as conn:  # compare-and-swap: one replica wins a round
        won = await conn.execute(
            update(server_state)
            .where(server_state.c.name == STATE, server_state.c.value == last.render())
            .values(value=claimed.render())
        )
    if won.rowcount != 1:
        return await last_check(engine)
    result = LastCheck.parse(LastCheck(now, await violations(engine), now).render())  # as stored
    async with engine.begin() as conn:
        await conn.execute(
            update(server_state).where(server_state.c.name == STATE).values(value=result.render())
        )
    return result
