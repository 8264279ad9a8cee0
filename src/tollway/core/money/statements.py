"""The statements of every call's reserve and settle (core/money/ledger.py), built once.

Building a Core statement and its cache key per call cost more CPU than running it
(docs/benchmarks.md); values go in as bound parameters, named p_* so that none is mistaken for a
column to SET.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert, select, update

from tollway.store.prepared import Prepared
from tollway.store.tables import accounts, key_spend, ledger, reservations, usage

HOLD = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("p_account"))
    .where(accounts.c.balance_nano - accounts.c.reserved_nano >= bindparam("p_amount"))
    .values(reserved_nano=accounts.c.reserved_nano + bindparam("p_amount"))
    .returning(accounts.c.balance_nano, accounts.c.reserved_nano)
)
INSERT_RESERVATION = Prepared(insert(reservations))
INSERT_LEDGER = Prepared(insert(ledger))
INSERT_USAGE = Prepared(insert(usage))
TAKE_HOLD = Prepared(
    delete(reservations)
    .where(reservations.c.id == bindparam("p_request"), reservations.c.account_id == bindparam("p_account"))
    .returning(
        reservations.c.account_id,
        reservations.c.amount_nano,
        reservations.c.key_id,
        reservations.c.key_period,
    )
)
LOCK_ACCOUNT = Prepared(
    select(accounts.c.balance_nano, accounts.c.reserved_nano)
    .where(accounts.c.id == bindparam("p_account"))
    .with_for_update()
)
CHARGE_ACCOUNT = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("p_account"))
    .values(
        balance_nano=accounts.c.balance_nano - bindparam("p_charge"),
        reserved_nano=accounts.c.reserved_nano - bindparam("p_hold"),
    )
)
CHARGE_KEY = Prepared(
    update(key_spend)
    .where(key_spend.c.key_id == bindparam("p_key"), key_spend.c.period == bindparam("p_period"))
    .values(
        spent_nano=key_spend.c.spent_nano + bindparam("p_charge"),
        reserved_nano=key_spend.c.reserved_nano - bindparam("p_hold"),
    )
)
