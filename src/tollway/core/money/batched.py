"""Set-based forms of the per-call hold's two transactions (core/money/ledger.py `_reserve_tx` and
`_settle_tx`), for the Transactor's `many` (store/transactor.py): a batch's holds, or its
settlements, in one statement per table instead of one per call each. On PostgreSQL each statement
is a round trip while the whole process waits on the batch (docs/benchmarks.md).

Each leaves the database as running the bodies one by one would, and returns what each would have.
A group it does not take raises NotTogether and the bodies run one by one, deciding each alone:
holds whose sum the account cannot fund (some of them may fit), a settlement whose hold is gone or
that costs more than its hold (it then reads the account: `charges.charge`). Rows are locked in
the order of the single bodies: reservations, the accounts (in id order), key_spend, usage_daily.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete

from tollway.core.money import charges
from tollway.core.money import statements as sql
from tollway.store.tables import reservations
from tollway.store.transactor import NotTogether

Held = namedtuple("Held", "balance_nano reserved_nano")  # the HOLD statement's row, as one body sees it

_TAKE_HOLDS = (
    delete(reservations)
    .where(reservations.c.id.in_(bindparam("p_requests", expanding=True)))
    .returning(
        reservations.c.id,
        reservations.c.account_id,
        reservations.c.amount_nano,
        reservations.c.key_id,
        reservations.c.key_period,
    )
)


def reserve_many(conn: Connection, holds: list[dict[str, Any]]) -> list[tuple[Any, int | None]]:
    """`Ledger._reserve_tx` without a key limit or `also`, for each reservation row in `holds`.
    Each hold's row reads as if the holds were taken one by one in this order."""
    if len({tuple(hold) for hold in holds}) != 1:
        raise NotTogether("reservation rows of different columns")
    sql.INSERT_RESERVATION.many(conn, holds)
    charges.append_many(
        conn,
        [
            {
                "account_id": hold["account_id"],
                "kind": "reserve",
                "amount_nano": 0,
                "reserved_delta_nano": hold["amount_nano"],
                "reference": hold["id"],
                "key_id": hold["key_id"],
            }
            for hold in holds
        ],
    )
    totals: dict[str, int] = {}
    for hold in holds:
        totals[hold["account_id"]] = totals.get(hold["account_id"], 0) + hold["amount_nano"]
    before: dict[str, Held] = {}
    for account_id in sorted(totals):
        row = sql.HOLD.first(conn, {"p_account": account_id, "p_amount": totals[account_id]})
        if row is None:
            raise NotTogether(f"account {account_id} cannot fund the batch's holds together")
        before[account_id] = Held(row.balance_nano, row.reserved_nano - totals[account_id])
    rows: list[tuple[Any, int | None]] = []
    for hold in holds:
        balance, reserved = before[hold["account_id"]]
        reserved += hold["amount_nano"]
        before[hold["account_id"]] = Held(balance, reserved)
        rows.append((Held(balance, reserved), None))
    return rows


@dataclass(frozen=True, slots=True)
class Settlement:
    account_id: str
    request_id: str
    cost_nano: int
    usage_row: dict[str, Any] | None


def settle_many(conn: Connection, batch: list[Settlement]) -> list[int]:
    """`Ledger._settle_tx` without `also`, for each settlement of a per-call hold."""
    if len({item.request_id for item in batch}) != len(batch):
        raise NotTogether("a request settled twice in one batch")
    taken = conn.execute(_TAKE_HOLDS, {"p_requests": [item.request_id for item in batch]}).all()
    held = {row.id: row for row in taken}
    accounts: dict[str, tuple[int, int]] = {}  # charge, hold
    keys: dict[tuple[str, str], tuple[int, int]] = {}
    for item in batch:
        row = held.get(item.request_id)
        if row is None or row.account_id != item.account_id or not 0 <= item.cost_nano <= row.amount_nano:
            raise NotTogether(f"settlement {item.request_id} is not within a hold of its account")
        charge, hold = accounts.get(item.account_id, (0, 0))
        accounts[item.account_id] = (charge + item.cost_nano, hold + row.amount_nano)
        if row.key_period is not None:
            charge, hold = keys.get((row.key_id, row.key_period), (0, 0))
            keys[(row.key_id, row.key_period)] = (charge + item.cost_nano, hold + row.amount_nano)
    for account_id in sorted(accounts):
        charge, hold = accounts[account_id]
        sql.CHARGE_ACCOUNT.first(conn, {"p_account": account_id, "p_charge": charge, "p_hold": hold})
    charges.append_many(
        conn,
        [
            {
                "account_id": item.account_id,
                "kind": "settle",
                "amount_nano": -item.cost_nano,
                "reserved_delta_nano": -held[item.request_id].amount_nano,
                "reference": item.request_id,
                "key_id": held[item.request_id].key_id,
            }
            for item in batch
        ],
    )
    for key_id, period in sorted(keys):
        charge, hold = keys[(key_id, period)]
        sql.CHARGE_KEY.first(conn, {"p_key": key_id, "p_period": period, "p_charge": charge, "p_hold": hold})
    charges.record_usage_many(conn, [(item.usage_row, item.cost_nano) for item in batch if item.usage_row])
    return [item.cost_nano for item in batch]
