"""A key's consumption limit: a second reservation, against the key, in its UTC period (DESIGN §4).

Runs inside the ledger's reserve transaction (core/money/ledger.py), after the account's hold: a key
past its limit rolls the whole hold back. Settle and release move the same `key_spend` row with the
account's (core/money/statements.py `CHARGE_KEY`, ledger `_release`).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from tollway.core.caller import KeyLimit
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import key_spend


class Shortfall(Exception):
    """A hold that does not fit (raised inside the reserve transaction, which it rolls back): `room`
    is what would fit, `refusal` the 402 to answer when the hold may not shrink to it."""

    def __init__(self, room: int, refusal: TollwayError) -> None:
        super().__init__(refusal.message)
        self.room = room
        self.refusal = refusal


def reserve(conn: Connection, limit: KeyLimit, period: str, amount: int) -> int:
    """Hold `amount` of the key's limit for `period`; returns what the key could spend before."""
    exists = (
        conn.execute(
            select(key_spend.c.key_id).where(key_spend.c.key_id == limit.key_id, key_spend.c.period == period)
        )
    ).first()
    if exists is None:
        conn.execute(
            insert(key_spend).values(key_id=limit.key_id, period=period, spent_nano=0, reserved_nano=0)
        )
    row = (
        conn.execute(
            update(key_spend)
            .where(key_spend.c.key_id == limit.key_id, key_spend.c.period == period)
            .where(key_spend.c.spent_nano + key_spend.c.reserved_nano + amount <= limit.limit_nano)
            .values(reserved_nano=key_spend.c.reserved_nano + amount)
            .returning(key_spend.c.spent_nano, key_spend.c.reserved_nano)
        )
    ).first()
    if row is None:
        used = (
            conn.execute(
                select(key_spend.c.spent_nano + key_spend.c.reserved_nano).where(
                    key_spend.c.key_id == limit.key_id, key_spend.c.period == period
                )
            )
        ).scalar_one()
        remaining = max(limit.limit_nano - used, 0)
        raise Shortfall(
            remaining,
            TollwayError(
                ErrorCode.KEY_LIMIT_EXCEEDED,
                f"This request may cost up to ${nano_to_usd(amount)} but this key has "
                f"${nano_to_usd(remaining)} left of its {limit.period} consumption limit.",
                extra={
                    "required": nano_to_usd(amount),
                    "available": nano_to_usd(remaining),
                    "limit_source": "key_limit",
                },
            ),
        )
    return int(limit.limit_nano - row.spent_nano - row.reserved_nano + amount)
