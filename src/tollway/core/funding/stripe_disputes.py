"""Card disputes (issue 25): a dispute's whole lifecycle moves money at most twice, once each way.

Stripe tells of a dispute with several events, in any order, each possibly repeated or concurrent:
`charge.dispute.created`, `.updated`, `.funds_withdrawn`, `.funds_reinstated` and `.closed` (status
`won`, `lost`, or `warning_closed` for an inquiry). The dispute, not the event, is the unit: one
`stripe_disputes` row per dispute id (INSERT … ON CONFLICT DO NOTHING, then the row is locked for the
rest of the transaction, so two events of one dispute apply one after the other), with two flags that
only ever go false → true:

- `debited`: the disputed amount was taken from the account (kind `adjust`, reference
  `stripe:<dispute id>`), by the first of created / updated / funds_withdrawn / closed `lost` that
  arrives while the money has not come back. An inquiry (status `warning_…`: Stripe withdraws nothing)
  debits nothing until it becomes a dispute.
- `credited`: the money came back, by closed `won` / `warning_closed` or funds_reinstated. If it was
  debited, the same amount is credited back once (kind `credit`, reference `stripe:<dispute id>`);
  if not (the closing arrived before the creation), nothing moves, and no later event debits it.

So created then won nets zero; won delivered twice, or with its funds_reinstated, credits once; closed
before created leaves the ledger untouched; lost keeps the debit. The ledger's unique (account, kind,
reference) backs each flag up. Every dispute event that changes something is flagged for the operator
(`stripe_events.flagged` and an `admin_audit` entry, stripe_topups.py `_record`). The debit may take
the available balance below zero; the account's keys then get 402 until it is topped up again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tollway.base.clock import utcnow
from tollway.core.money import charges
from tollway.errors import ErrorCode, TollwayError
from tollway.store.funding_tables import stripe_disputes

NANO_PER_CENT = 10_000_000
MAX_ID = 100
PREFIX = "charge.dispute."
DEBITS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.funds_withdrawn")
RETURNED = ("won", "warning_closed")  # a closing that gives the money back (an inquiry: nothing was taken)

R = TypeVar("R")  # what stripe_topups._record(conn, event, topup, outcome, amount, flag=) returns: Applied


def handles(kind: str) -> bool:
    return kind.startswith(PREFIX)


def apply(
    conn: Connection, event: dict[str, Any], dispute: dict[str, Any], topup: Any, record: Callable[..., R]
) -> R:
    """Apply one dispute event of `topup`'s charge, in the caller's transaction."""
    kind = event["type"]
    dispute_id, status, amount = (
        dispute.get("id"),
        str(dispute.get("status") or "")[:32],
        dispute.get("amount"),
    )
    if not isinstance(dispute_id, str) or not 0 < len(dispute_id) <= MAX_ID:
        return record(conn, event, topup, "dispute_malformed", flag=True)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return record(conn, event, topup, "dispute_no_amount", flag=True)
    row = _row(conn, dispute_id, dispute, topup, amount * NANO_PER_CENT, status)
    gives_back = kind == "charge.dispute.funds_reinstated" or (
        kind == "charge.dispute.closed" and status in RETURNED
    )
    takes = (
        kind in DEBITS or (kind == "charge.dispute.closed" and status == "lost")
    ) and not status.startswith("warning_")
    if gives_back:
        if row.credited:
            return _counted(conn, event, topup, record, row, status)
        _set(conn, dispute_id, status, credited=True)
        if not row.debited:  # closed before it was ever debited: nothing moves, and nothing will
            return record(conn, event, topup, "dispute_returned", flag=True)
        _fund(conn, row.account_id, int(row.amount_nano), "credit", dispute_id)
        return record(conn, event, topup, "dispute_reversed", int(row.amount_nano), flag=True)
    if takes and not row.debited and not row.credited:
        _set(conn, dispute_id, status, debited=True)
        _fund(conn, row.account_id, -int(row.amount_nano), "adjust", dispute_id)
        return record(conn, event, topup, "disputed", -int(row.amount_nano), flag=True)
    if kind == "charge.dispute.closed" and status == "lost" and row.status != "lost" and not row.credited:
        _set(conn, dispute_id, status)
        return record(conn, event, topup, "dispute_lost", flag=True)  # the debit stays
    if status.startswith("warning_") and not row.debited and not row.credited:
        _set(conn, dispute_id, status)
        return record(conn, event, topup, "dispute_inquiry", flag=True)
    return _counted(conn, event, topup, record, row, status)


def _row(
    conn: Connection, dispute_id: str, dispute: dict[str, Any], topup: Any, amount: int, status: str
) -> Any:
    """The dispute's row, created by the first event that names it, locked until the transaction ends."""
    now = utcnow()
    charge = dispute.get("charge")
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(stripe_disputes)
        .values(
            id=dispute_id,
            charge=charge if isinstance(charge, str) and len(charge) <= MAX_ID else None,
            topup_id=topup.id,
            account_id=topup.account_id,
            amount_nano=amount,
            status=status or "unknown",
            debited=False,
            credited=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    # PostgreSQL: FOR UPDATE waits for a concurrent event of this dispute to commit, then reads its
    # outcome. SQLite: BEGIN IMMEDIATE (store/db.py) already serialises the writers.
    return conn.execute(
        select(stripe_disputes).where(stripe_disputes.c.id == dispute_id).with_for_update()
    ).one()


def _set(conn: Connection, dispute_id: str, status: str, **flags: bool) -> None:
    statement = update(stripe_disputes).where(stripe_disputes.c.id == dispute_id)
    for name in flags:  # false -> true only: the row is locked, this is the flag's second guard
        statement = statement.where(stripe_disputes.c[name].is_(False))
    if conn.execute(statement.values(status=status or "unknown", updated_at=utcnow(), **flags)).rowcount != 1:
        raise TollwayError(ErrorCode.CONFLICT, "This dispute changed concurrently; Stripe retries the event.")


def _fund(conn: Connection, account_id: str, amount_nano: int, kind: str, dispute_id: str) -> None:
    if not charges.fund(conn, account_id, amount_nano, kind, f"stripe:{dispute_id}"):
        raise TollwayError(ErrorCode.VALIDATION, "The dispute's account is gone, or at its most it may hold.")


def _counted(
    conn: Connection, event: dict[str, Any], topup: Any, record: Callable[..., R], row: Any, status: str
) -> R:
    """An event that moves nothing (its money is counted already): its status unless one is final, unflagged."""
    if status and row.status not in (*RETURNED, "lost"):
        conn.execute(
            update(stripe_disputes)
            .where(stripe_disputes.c.id == row.id)
            .values(status=status, updated_at=utcnow())
        )
    return record(conn, event, topup, "dispute_counted")
