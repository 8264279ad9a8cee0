"""The transactions of budget leases (core/money/leases.py), run by the ledger's Transactor: pure
database work, safe to run twice (store/transactor.py) — a lease id is a primary key, and every
ledger entry a unique (account, kind, reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from tollway.base.clock import utcnow
from tollway.core.money import charges
from tollway.core.money import statements as sql
from tollway.store.tables import accounts, budget_leases
from tollway.store.transactor import NotTogether


def take(
    conn: Connection,
    lease_id: str,
    account_id: str,
    owner: str,
    least: int,
    target: int,
    expires_at: datetime,
) -> tuple[int, int] | None:
    """A new lease of about `target` (never under `least`): (its amount, the available balance left
    beside it), or None when the account cannot spare one."""
    # A plain read, no row lock: the conditional UPDATE below is what guarantees the lease fits (a
    # FOR UPDATE here would wait on, and deadlock with, the key-share locks of other processes'
    # holds and settlements of the account).
    available = conn.execute(
        select(accounts.c.balance_nano - accounts.c.reserved_nano).where(accounts.c.id == account_id)
    ).scalar()
    if available is None:
        return None  # the per-call hold names the missing account
    others = conn.execute(
        select(func.count(func.distinct(budget_leases.c.owner))).where(
            budget_leases.c.account_id == account_id,
            budget_leases.c.owner != owner,
            budget_leases.c.expires_at >= utcnow(),
        )
    ).scalar_one()
    amount = min(target, available // (2 * (int(others) + 1)))
    if amount < max(least, 1) or sql.HOLD.first(conn, {"p_account": account_id, "p_amount": amount}) is None:
        return None
    now = utcnow()
    conn.execute(
        insert(budget_leases).values(
            id=lease_id, account_id=account_id, owner=owner, amount_nano=amount,
            consumed_nano=0, expires_at=expires_at, created_at=now,
        )
    )  # fmt: skip
    charges.append(conn, account_id, "lease", 0, amount, lease_id, None)
    return amount, available - amount


def settle(
    conn: Connection,
    lease_id: str,
    hold: int,
    account_id: str,
    request_id: str,
    cost_nano: int,
    key_id: str | None,
    usage_row: dict[str, Any] | None,
    give_back: bool,
) -> tuple[int, int]:
    """(charged, of which from the lease). The lease pays up to the hold while its row lives; a
    retired lease (`give_back`) also returns the unspent rest of the hold at once."""
    from_lease = min(max(cost_nano, 0), hold)
    took = conn.execute(
        update(budget_leases)
        .where(
            budget_leases.c.id == lease_id,
            budget_leases.c.consumed_nano + from_lease <= budget_leases.c.amount_nano,
        )
        .values(consumed_nano=budget_leases.c.consumed_nano + from_lease)
    ).rowcount
    hold, from_lease = (hold, from_lease) if took == 1 else (0, 0)
    charged = charges.charge(
        conn,
        account_id,
        request_id,
        cost_nano,
        hold=hold,
        freed=from_lease,
        key_id=key_id,
        key_period=None,
        usage_row=usage_row,
    )
    if give_back and took == 1:
        shrink(conn, lease_id, account_id, hold - from_lease, f"{lease_id}/{request_id}")
    return charged, from_lease


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settlement `settle_many` can take: within its hold (0 <= cost <= hold), lease not retired."""

    lease_id: str
    hold: int
    account_id: str
    request_id: str
    cost_nano: int
    key_id: str | None
    usage_row: dict[str, Any] | None


def settle_many(conn: Connection, batch: list[Settlement]) -> list[tuple[int, int]]:
    """`settle` for each, set-based (the Transactor's `many`): each lease and each account updated
    once by its batch's sum, the ledger entries, usage rows and rollups inserted in one driver call
    each. Within its hold a settlement charges its cost, all of it from its lease, so the sums are
    the same as settling one by one. Raises NotTogether when a lease cannot pay its sum (ended,
    swept, or over): each then settles alone, as `settle` decides. Same row order as `settle`:
    the lease rows, then the accounts (in id order), then the rest."""
    per_lease: dict[str, int] = {}
    per_account: dict[str, int] = {}
    for item in batch:
        if not 0 <= item.cost_nano <= item.hold:
            raise NotTogether(f"settlement {item.request_id} is not within its hold")
        per_lease[item.lease_id] = per_lease.get(item.lease_id, 0) + item.cost_nano
        per_account[item.account_id] = per_account.get(item.account_id, 0) + item.cost_nano
    for lease_id in sorted(per_lease):
        took = conn.execute(
            update(budget_leases)
            .where(
                budget_leases.c.id == lease_id,
                budget_leases.c.consumed_nano + per_lease[lease_id] <= budget_leases.c.amount_nano,
            )
            .values(consumed_nano=budget_leases.c.consumed_nano + per_lease[lease_id])
        ).rowcount
        if took != 1:
            raise NotTogether(f"lease {lease_id} cannot pay its batch")
    for account_id in sorted(per_account):
        charged = per_account[account_id]
        sql.CHARGE_ACCOUNT.first(conn, {"p_account": account_id, "p_charge": charged, "p_hold": charged})
    charges.append_many(
        conn,
        [
            {
                "account_id": item.account_id,
                "kind": "settle",
                "amount_nano": -item.cost_nano,
                "reserved_delta_nano": -item.cost_nano,
                "reference": item.request_id,
                "key_id": item.key_id,
            }
            for item in batch
        ],
    )
    charges.record_usage_many(conn, [(item.usage_row, item.cost_nano) for item in batch if item.usage_row])
    return [(item.cost_nano, item.cost_nano) for item in batch]


def shrink(conn: Connection, lease_id: str, account_id: str, amount: int, reference: str) -> None:
    """A retired lease gives back a call's unspent hold (what no other call of it can use)."""
    if amount > 0:
        shrunk = conn.execute(
            update(budget_leases)
            .where(budget_leases.c.id == lease_id)
            .values(amount_nano=budget_leases.c.amount_nano - amount)
        ).rowcount
        if shrunk == 1:  # a swept lease gave everything back already
            _unreserve(conn, account_id, amount, reference)


def trim(conn: Connection, lease_id: str, account_id: str, carved: Callable[[], int]) -> int:
    """A retired lease keeps what its calls in flight may still spend (`carved()`, read inside the
    transaction: it can only have shrunk since), and gives back the rest."""
    row = conn.execute(
        select(budget_leases.c.amount_nano, budget_leases.c.consumed_nano).where(
            budget_leases.c.id == lease_id
        )
    ).first()
    if row is None:
        return 0  # swept
    excess = int(row.amount_nano - row.consumed_nano - carved())
    shrink(conn, lease_id, account_id, excess, f"{lease_id}/trim")
    return max(excess, 0)


def end(conn: Connection, lease_id: str, reference: str) -> int | None:
    """Delete the lease row and return what it still held; None when it was already gone."""
    row = conn.execute(
        delete(budget_leases)
        .where(budget_leases.c.id == lease_id)
        .returning(budget_leases.c.account_id, budget_leases.c.amount_nano, budget_leases.c.consumed_nano)
    ).first()
    if row is None:
        return None
    back = int(row.amount_nano - row.consumed_nano)
    if back:
        _unreserve(conn, row.account_id, back, reference)
    return back


def _unreserve(conn: Connection, account_id: str, amount: int, reference: str) -> None:
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(reserved_nano=accounts.c.reserved_nano - amount)
    )
    charges.append(conn, account_id, "unlease", 0, -amount, reference, None)


def renew(conn: Connection, ids: list[str], expires_at: datetime) -> list[str]:
    statement = (
        update(budget_leases)
        .where(budget_leases.c.id.in_(ids))
        .values(expires_at=expires_at)
        .returning(budget_leases.c.id)
    )
    return list(conn.execute(statement).scalars().all())
