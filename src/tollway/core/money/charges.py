"""The pieces every money transaction shares (core/money/ledger.py, core/money/leases.py): the
ledger entry, the account's available balance, and the settlement's charge.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, select, update

from tollway.base.clock import utcnow
from tollway.core.money import statements as sql
from tollway.core.money import usage_events
from tollway.core.money.amounts import MAX_NANO
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store import rollup
from tollway.store.tables import accounts

log = logging.getLogger("tollway.ledger")


def insufficient(amount_nano: int, available: int) -> TollwayError:
    """402: the hold does not fit in the account's available balance."""
    return TollwayError(
        ErrorCode.INSUFFICIENT_BALANCE,
        f"This request may cost up to ${nano_to_usd(amount_nano)} but the available balance is "
        f"${nano_to_usd(available)}. Top up, or set a lower max_tokens.",
        extra={
            "required": nano_to_usd(amount_nano),
            "available": nano_to_usd(available),
            "limit_source": "account",
        },
    )


def available(conn: Connection, account_id: str) -> int:
    row = (
        conn.execute(
            select(accounts.c.balance_nano - accounts.c.reserved_nano).where(accounts.c.id == account_id)
        )
    ).first()
    if row is None:
        raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.")
    return int(row[0])


def append(
    conn: Connection,
    account_id: str,
    kind: str,
    amount: int,
    reserved_delta: int,
    reference: str,
    key_id: str | None,
) -> None:
    sql.INSERT_LEDGER.first(
        conn,
        {
            "account_id": account_id,
            "kind": kind,
            "amount_nano": amount,
            "reserved_delta_nano": reserved_delta,
            "reference": reference,
            "key_id": key_id,
            "created_at": utcnow(),
        },
    )


def charge(
    conn: Connection,
    account_id: str,
    request_id: str,
    cost_nano: int,
    *,
    hold: int,
    freed: int,
    key_id: str | None,
    key_period: str | None,
    usage_row: dict[str, Any] | None,
) -> int:
    """Charge `cost_nano` to the account, of which `hold` was set aside for it: at most the hold plus
    what is still available (never less than 0 of it), so a settlement never takes the available
    balance below zero, nor further below it when a card refund or dispute already did
    (core/funding/stripe_topups.py); a shortfall is logged. `freed` is what the account's reserved
    shrinks by: the whole hold for a per-call hold, the part charged for a hold carved from a lease
    (the rest stays in the lease). Returns what was charged.

    Past the hold (an upstream that ignored the output cap it was sent, or a provider's usage above
    it): the charge is the actual cost up to `hold` plus the account's available balance, and the
    key's consumption limit (`key_period`) records that same charge even when it passes the limit.
    The limit bounds what may be *held*; a key past it admits nothing more in its period, and the key's
    spend always equals what the ledger charged under it (tests/money/test_key_limits.py, "past the hold")."""
    if 0 <= cost_nano <= hold:
        # The hold is part of reserved (reserved >= 0 is a CHECK), set aside when it was taken, so
        # the account can pay the cost: no need to read the account row.
        charged = cost_nano
    else:
        account = sql.LOCK_ACCOUNT.first(conn, {"p_account": account_id})
        room = hold + max(0, account.balance_nano - account.reserved_nano)
        charged = max(0, min(cost_nano, room))
        if charged < cost_nano:
            log.warning(
                "shortfall: request %s cost %d nano-USD, %d could be charged", request_id, cost_nano, charged
            )
    # The account row before the key_spend and usage_daily rows, as in reserve and release: on
    # PostgreSQL another order lets a settle and a reserve (or release) of the same account each
    # hold the row the other waits for (a deadlock aborts one of them).
    sql.CHARGE_ACCOUNT.first(conn, {"p_account": account_id, "p_charge": charged, "p_hold": freed})
    append(conn, account_id, "settle", -charged, -freed, request_id, key_id)
    if key_period is not None:
        sql.CHARGE_KEY.first(
            conn, {"p_key": key_id, "p_period": key_period, "p_charge": charged, "p_hold": hold}
        )
    record_usage(conn, usage_row, charged)
    return int(charged)


def append_many(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """`append` for each entry (the INSERT_LEDGER columns but created_at), in one driver call."""
    now = utcnow()
    sql.INSERT_LEDGER.many(conn, [{**entry, "created_at": now} for entry in entries])


def record_usage_many(conn: Connection, rows: list[tuple[dict[str, Any], int]]) -> None:
    """`record_usage` for each (usage row, cost): one INSERT per set of columns, one rollup upsert per
    group, each in one driver call."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row, cost_nano in rows:
        by_columns.setdefault(tuple(row), []).append({**row, "cost_nano": cost_nano})
    for same in by_columns.values():
        sql.INSERT_USAGE.many(conn, same)
    rollup.add_many(conn, rows)
    for row, cost_nano in rows:
        usage_events.capture(conn, row, cost_nano)


def record_usage(conn: Connection, usage_row: dict[str, Any] | None, cost_nano: int) -> None:
    if usage_row is not None:
        sql.INSERT_USAGE.first(conn, {**usage_row, "cost_nano": cost_nano})
        rollup.add(conn, usage_row, cost_nano)
        usage_events.capture(conn, usage_row, cost_nano)  # issue 26: its event, when events are on


def fund(conn: Connection, account_id: str, amount_nano: int, kind: str, reference: str) -> bool:
    """Money from outside (core/funding/): a credit (amount > 0) up to the MAX_NANO ceiling, or a
    funding debit (amount < 0: a card refund or dispute) that may take the available balance below
    zero — holds then refuse (402) until it is topped up again. One ledger entry, in the caller's
    transaction; a repeated (account, kind, reference) raises IntegrityError there. False when the
    account is missing or a credit would pass the ceiling (nothing written)."""
    if amount_nano == 0:
        raise ValueError("a funding entry moves money")
    statement = update(accounts).where(accounts.c.id == account_id)
    if amount_nano > 0:
        statement = statement.where(accounts.c.balance_nano <= MAX_NANO - amount_nano)
    if conn.execute(statement.values(balance_nano=accounts.c.balance_nano + amount_nano)).rowcount != 1:
        return False
    append(conn, account_id, kind, amount_nano, 0, reference, None)
    return True
