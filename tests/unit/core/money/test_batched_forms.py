"""The set-based forms themselves (core/money/batched.py, lease_rows.settle_many), called directly, on
SQLite and PostgreSQL: each must leave the books exactly as its single bodies run one by one would, and
return what they would have; a group it must not take raises NotTogether.

Through the Ledger a set-based form that wrongly refuses a group is invisible (the bodies then run one
by one and the books still come out right), and on SQLite the writer may not group calls at all. So
here two accounts get the same calls: one settled by the single bodies, one by the set-based form, and
every row they touch is compared, with ids replaced by their position.
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_lease_rows import run
from tests.unit.core.money.test_ledger import new_account, rid, usage_row
from tollway.base.clock import period_key, utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.caller import KeyLimit
from tollway.core.money import batched, lease_rows
from tollway.core.money.ledger import Ledger
from tollway.store.tables import accounts, budget_leases, key_spend, ledger, reservations, usage, usage_daily
from tollway.store.transactor import NotTogether

FUNDS = 1_000_000
SKIPPED = {"id", "name", "created_at", "expires_at"}


async def _books(engine: AsyncEngine, account: str, names: dict[str, str]) -> dict[str, Any]:
    """Every row of `account` the forms touch, ids replaced by their names in `names`."""

    def named(value: Any) -> Any:
        if isinstance(value, str):
            for raw, name in names.items():
                value = value.replace(raw, name)  # ids are random hex: no false matches
        return value

    def plain(row: Any) -> tuple[Any, ...]:
        return tuple((k, named(v)) for k, v in row._mapping.items() if k not in SKIPPED)

    books: dict[str, Any] = {}
    async with engine.connect() as conn:
        for table in (accounts, reservations, ledger, usage, usage_daily, budget_leases):
            column = table.c.id if table is accounts else table.c.account_id
            rows = (await conn.execute(select(table).where(column == account))).all()
            books[table.name] = sorted((plain(r) for r in rows), key=repr)
        keys = [k for k, v in names.items() if v.startswith("key")]
        rows = (await conn.execute(select(key_spend).where(key_spend.c.key_id.in_(keys)))).all()
        books["key_spend"] = sorted((plain(r) for r in rows), key=repr)
    return books


def _reserve_one_by_one(conn: Connection, holds: list[dict[str, Any]]) -> list[tuple[Any, int | None]]:
    return [Ledger._reserve_tx(conn, hold, None, None) for hold in holds]


def _settle_one_by_one(conn: Connection, batch: list[batched.Settlement]) -> list[int]:
    return [
        Ledger._settle_tx(conn, i.account_id, i.request_id, i.cost_nano, i.usage_row, None) for i in batch
    ]


def _lease_settle_one_by_one(conn: Connection, batch: list[lease_rows.Settlement]) -> list[tuple[int, int]]:
    return [
        lease_rows.settle(
            conn, i.lease_id, i.hold, i.account_id, i.request_id, i.cost_nano, i.key_id, i.usage_row, False
        )
        for i in batch
    ]


def _forget(leased: Ledger, requests: list[str]) -> None:
    """These carves were settled straight in the database: take them off the process's books, so the
    fixture's shutdown ends their lease (rather than keep it for calls that will never settle, until a
    sweep: a later test's sweep would count it)."""
    for request_id in requests:
        carve = leased.leases._carves.pop(request_id)
        carve.lease.carved -= carve.hold


def _names(account: str, requests: list[str], keys: list[str]) -> dict[str, str]:
    return {account: "account", **{r: f"request{n}" for n, r in enumerate(requests)}} | {
        k: f"key{n}" for n, k in enumerate(keys)
    }


def _hold(account: str, request_id: str, amount: int, key_id: str | None, now: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "account_id": account,
        "key_id": key_id,
        "amount_nano": amount,
        "key_period": None,
        "expires_at": now,
    }


@pytest.mark.parametrize("amounts", [[700], [1_000, 1, 250_000, 33]])
async def test_reserve_many_holds_as_the_single_bodies_do(
    engine: AsyncEngine, accounts_service: Accounts, amounts: list[int]
) -> None:
    now = utcnow()
    results, books = [], []
    for together in (False, True):
        account = await new_account(accounts_service, credit=FUNDS)
        key = f"key_{secrets.token_hex(6)}"
        requests = [rid() for _ in amounts]
        holds = [
            _hold(account, r, a, key if n % 2 else None, now)
            for n, (r, a) in enumerate(zip(requests, amounts, strict=True))
        ]
        form = batched.reserve_many if together else _reserve_one_by_one
        rows = await run(engine, partial(form, holds=holds))
        results.append([(int(row.balance_nano), int(row.reserved_nano), left) for row, left in rows])
        books.append(await _books(engine, account, _names(account, requests, [key])))
    assert results[1] == results[0]
    running = 0
    assert results[0] == [(FUNDS, running := running + a, None) for a in amounts]
    assert books[1] == books[0]
    assert len(books[0]["reservations"]) == len(amounts) and len(books[0]["ledger"]) == len(amounts) + 1


async def test_reserve_many_refuses_holds_its_account_cannot_fund_together(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    holds = [_hold(account, rid(), FUNDS // 2 + 1, None, utcnow()) for _ in range(2)]  # each fits, not both
    with pytest.raises(NotTogether):
        await run(engine, lambda c: batched.reserve_many(c, holds))


async def test_reserve_many_refuses_rows_of_different_columns(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    odd = {k: v for k, v in _hold(account, rid(), 5, None, utcnow()).items() if k != "key_period"}
    holds = [_hold(account, rid(), 5, None, utcnow()), odd]
    with pytest.raises(NotTogether):
        await run(engine, lambda c: batched.reserve_many(c, holds))


@pytest.mark.parametrize("with_usage", [True, False])
async def test_settle_many_settles_as_the_single_bodies_do(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger, with_usage: bool
) -> None:
    """Plain and key-limited holds (two keys, so two key_spend rows), costs from 0 to the whole hold."""
    holds = [1_000, 2_000, 3_000, 4_000, 5_000]
    costs = [0, 2_000, 1, 3_999, 2_500]
    results, books = [], []
    for together in (False, True):
        account = await new_account(accounts_service, credit=FUNDS)
        keys = [f"key_{secrets.token_hex(6)}" for _ in range(2)]
        requests = [rid() for _ in holds]
        for n, (request_id, hold) in enumerate(zip(requests, holds, strict=True)):
            key = keys[n % 2] if n else None
            limit = KeyLimit(key, 10 * FUNDS, "day") if key else None
            await ledger.reserve(account, request_id, hold, limit, key)
        rows = [usage_row(account, r) if with_usage else None for r in requests]
        batch = [batched.Settlement(account, r, c, u) for r, c, u in zip(requests, costs, rows, strict=True)]
        settle = batched.settle_many if together else _settle_one_by_one
        charged = await run(engine, partial(settle, batch=batch))
        results.append(charged)
        books.append(await _books(engine, account, _names(account, requests, keys)))
    assert results[1] == results[0] == costs
    assert books[1] == books[0]
    assert books[0]["reservations"] == []
    assert len(books[0]["usage"]) == (len(holds) if with_usage else 0)
    day = period_key("day", utcnow())
    spent = {
        k: (sum(costs[n] for n in range(1, 5) if (n % 2) == i), 0) for i, k in enumerate(("key0", "key1"))
    }
    assert {
        dict(r)["key_id"]: (dict(r)["spent_nano"], dict(r)["reserved_nano"]) for r in books[1]["key_spend"]
    } == spent
    assert {dict(r)["period"] for r in books[1]["key_spend"]} == {day}


@pytest.mark.parametrize(
    "bad",
    ["twice", "past its hold", "negative", "no hold", "another account's hold"],
)
async def test_settle_many_refuses_what_it_cannot_take(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger, bad: str
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    other = await new_account(accounts_service, credit=FUNDS)
    first, second = rid(), rid()
    await ledger.reserve(account, first, 1_000)
    await ledger.reserve(other if bad == "another account's hold" else account, second, 1_000)
    cost, request = (
        {"past its hold": 1_001, "negative": -1}.get(bad, 500),
        {"twice": first, "no hold": rid()}.get(bad, second),
    )
    batch = [batched.Settlement(account, first, 500, None), batched.Settlement(account, request, cost, None)]
    with pytest.raises(NotTogether):
        await run(engine, lambda c: batched.settle_many(c, batch))
    control = [batched.Settlement(account, first, 500, None)]
    assert await run(engine, lambda c: batched.settle_many(c, control)) == [500]


async def test_leased_settle_many_settles_as_the_single_bodies_do(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger
) -> None:
    hold = 1_000
    costs = [0, 1, 999, 1_000, 400, 400]
    results, books = [], []
    for together in (False, True):
        account = await new_account(accounts_service, credit=FUNDS)
        key = f"key_{secrets.token_hex(6)}"
        requests = [rid() for _ in costs]
        for n, request_id in enumerate(requests):
            await leased.reserve(account, request_id, hold, None, key if n % 2 else None)
        carves = [leased.leases.carve_of(r) for r in requests]
        assert all(carves)
        items = [
            lease_rows.Settlement(
                carve.lease.id, hold, account, r, c, carve.key_id, usage_row(account, r, key_id=carve.key_id)
            )
            for carve, r, c in zip(carves, requests, costs, strict=True)
            if carve is not None
        ]
        leased_settle = lease_rows.settle_many if together else _lease_settle_one_by_one
        charged = await run(engine, partial(leased_settle, batch=items))
        results.append(charged)
        _forget(leased, requests)
        lease_ids = {carve.lease.id: f"lease{n}" for n, carve in enumerate(carves) if carve is not None}
        books.append(await _books(engine, account, _names(account, requests, [key]) | lease_ids))
    assert results[1] == results[0] == [(c, c) for c in costs]
    assert books[1] == books[0]
    [lease] = books[1]["budget_leases"]
    assert dict(lease)["consumed_nano"] == sum(costs)


async def test_leased_settle_many_refuses_a_lease_that_cannot_pay_its_sum(
    engine: AsyncEngine, accounts_service: Accounts, leased: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    request_id = rid()
    await leased.reserve(account, request_id, 1_000)
    carve = leased.leases.carve_of(request_id)
    assert carve is not None
    async with engine.connect() as conn:
        amount = (
            await conn.execute(
                select(budget_leases.c.amount_nano).where(budget_leases.c.id == carve.lease.id)
            )
        ).scalar_one()
    # A batch that takes the lease exactly to its amount is taken together; one nano more is not.
    exact = lease_rows.Settlement(carve.lease.id, amount, account, request_id, amount, None, None)
    async with engine.connect() as conn:
        taken = await conn.run_sync(lambda c: lease_rows.settle_many(c, [exact]))
        await conn.rollback()
    assert taken == [(amount, amount)]
    past = lease_rows.Settlement(carve.lease.id, amount + 1, account, request_id, amount + 1, None, None)
    with pytest.raises(NotTogether):
        await run(engine, lambda c: lease_rows.settle_many(c, [past]))
    over = lease_rows.Settlement(carve.lease.id, 1_000, account, request_id, 1_001, None, None)
    with pytest.raises(NotTogether):
        await run(engine, lambda c: lease_rows.settle_many(c, [over]))
    assert await leased.settle(account, request_id, 1_000) == 1_000  # the call itself settles as usual
