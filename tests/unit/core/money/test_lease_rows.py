"""The transactions of budget leases (core/money/lease_rows.py), one by one with exact figures, on SQLite
and PostgreSQL: how big a new lease is, what a settlement takes from it, and what retiring and ending it
give back. core/money/test_leases.py drives them through the Ledger; here each rule has its own numbers,
so a changed divisor, bound or sign shows."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import new_account, rid, usage_row
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money import lease_rows
from tollway.core.money.ledger import Ledger
from tollway.store.tables import accounts, budget_leases
from tollway.store.tables import ledger as ledger_table

T = TypeVar("T")
FUNDS = 1_000_000


async def run(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    async with engine.begin() as conn:
        return await conn.run_sync(work)


def later(seconds: float = 60) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def take(
    engine: AsyncEngine,
    account: str,
    *,
    owner: str = "me",
    least: int = 1,
    target: int = 10**15,
    expires_at: datetime | None = None,
) -> tuple[str, tuple[int, int] | None]:
    lease_id = f"lease_{secrets.token_hex(8)}"
    taken = await run(
        engine,
        lambda c: lease_rows.take(c, lease_id, account, owner, least, target, expires_at or later()),
    )
    return lease_id, taken


async def lease(engine: AsyncEngine, lease_id: str) -> tuple[int, int] | None:
    """(amount, consumed), or None when the row is gone."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(budget_leases.c.amount_nano, budget_leases.c.consumed_nano).where(
                    budget_leases.c.id == lease_id
                )
            )
        ).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def account_row(engine: AsyncEngine, account: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(accounts.c.balance_nano, accounts.c.reserved_nano).where(accounts.c.id == account)
            )
        ).one()
    return int(row[0]), int(row[1])


async def entries(engine: AsyncEngine, account: str) -> list[tuple[str, int, int, str, str | None]]:
    """(kind, amount, reserved delta, reference, key id) of the account's ledger, oldest first."""
    columns = (
        ledger_table.c.kind,
        ledger_table.c.amount_nano,
        ledger_table.c.reserved_delta_nano,
        ledger_table.c.reference,
        ledger_table.c.key_id,
    )
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(*columns).where(ledger_table.c.account_id == account).order_by(ledger_table.c.id)
        )
        return [(r[0], int(r[1]), int(r[2]), r[3], r[4]) for r in rows]


async def set_lease(engine: AsyncEngine, lease_id: str, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(budget_leases).where(budget_leases.c.id == lease_id).values(**values))


# -- take: a new lease is half the available balance, shared among the live processes --------------


async def test_a_first_lease_is_half_the_available_balance_and_says_what_is_left(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    await ledger.reserve(account, rid(), 100_000)  # available: 900,000
    lease_id, taken = await take(engine, account)
    assert taken == (450_000, 450_000)
    assert await lease(engine, lease_id) == (450_000, 0)
    assert await account_row(engine, account) == (FUNDS, 550_000)
    assert (await entries(engine, account))[-1] == ("lease", 0, 450_000, lease_id, None)


async def test_a_lease_never_exceeds_its_target(engine: AsyncEngine, accounts_service: Accounts) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    assert (await take(engine, account, target=1_234))[1] == (1_234, FUNDS - 1_234)


async def test_each_other_live_process_with_a_lease_shares_the_available_balance(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    """Other owners' live leases count once per owner; this owner's own, other accounts' and expired
    leases do not."""
    account = await new_account(accounts_service, credit=FUNDS)
    elsewhere = await new_account(accounts_service, credit=FUNDS)
    assert (await take(engine, account, owner="b", target=100_000))[1] == (100_000, 900_000)
    assert (await take(engine, account, owner="b", target=100_000))[1] == (100_000, 800_000)
    assert (await take(engine, account, owner="me", target=100_000))[1] == (100_000, 700_000)
    expired, _ = await take(engine, account, owner="c", target=100_000)
    await set_lease(engine, expired, expires_at=utcnow() - timedelta(seconds=1))
    await take(engine, elsewhere, owner="d", target=100_000)
    # available 600,000; one other live owner ("b", twice): 600,000 // (2 × 2)
    assert (await take(engine, account, owner="me"))[1] == (150_000, 450_000)


async def test_a_lease_smaller_than_the_least_asked_is_not_taken(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    assert (await take(engine, account, least=501))[1] is None
    assert await account_row(engine, account) == (1_000, 0)
    assert [e[0] for e in await entries(engine, account)] == ["credit"]
    assert (await take(engine, account, least=500))[1] == (500, 500)


async def test_a_one_nano_lease_is_taken_but_never_an_empty_one(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=2)
    assert (await take(engine, account, least=0))[1] == (1, 1)
    assert (await take(engine, account, least=0))[1] is None  # 1 // 2 == 0
    assert await account_row(engine, account) == (2, 1)


# -- settle: the lease pays up to the hold while it has room ------------------------------------------


async def test_a_call_settles_from_its_lease_and_the_lease_counts_what_it_paid(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    request = rid()
    settled = await run(
        engine,
        lambda c: lease_rows.settle(
            c, lease_id, 3_000, account, request, 2_500, "key_1", usage_row(account, request), give_back=False
        ),
    )
    assert settled == (2_500, 2_500)
    assert await lease(engine, lease_id) == (10_000, 2_500)
    assert await account_row(engine, account) == (FUNDS - 2_500, 7_500)
    assert (await entries(engine, account))[-1] == ("settle", -2_500, -2_500, request, "key_1")


async def test_a_free_call_takes_nothing_from_its_lease(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    settled = await run(
        engine,
        lambda c: lease_rows.settle(c, lease_id, 3_000, account, rid(), 0, None, None, give_back=False),
    )
    assert settled == (0, 0)
    assert await lease(engine, lease_id) == (10_000, 0)
    assert await account_row(engine, account) == (FUNDS, 10_000)


@pytest.mark.parametrize("beside", [50, 0])
async def test_a_lease_without_room_for_the_hold_leaves_the_call_to_the_available_balance(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger, beside: int
) -> None:
    """Consumed 9,000 of 10,000: a hold of 3,000 does not fit, so the lease pays nothing, and the call is
    charged from what is available beside the lease, never more (nothing, when nothing is)."""
    account = await new_account(accounts_service, credit=20_000)
    lease_id, _ = await take(engine, account, target=10_000)
    await ledger.reserve(account, rid(), 10_000 - beside)
    await set_lease(engine, lease_id, consumed_nano=9_000)
    request = rid()
    settled = await run(
        engine,
        lambda c: lease_rows.settle(
            c, lease_id, 3_000, account, request, 2_000, "key_1", None, give_back=False
        ),
    )
    assert settled == (beside, 0)
    assert await lease(engine, lease_id) == (10_000, 9_000)
    assert await account_row(engine, account) == (20_000 - beside, 20_000 - beside)
    assert (await entries(engine, account))[-1] == ("settle", -beside, 0, request, "key_1")


async def test_a_retired_lease_gives_back_what_the_call_did_not_spend(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    request = rid()
    await run(
        engine,
        lambda c: lease_rows.settle(c, lease_id, 3_000, account, request, 1, None, None, give_back=True),
    )
    assert await lease(engine, lease_id) == (7_001, 1)
    assert await account_row(engine, account) == (FUNDS - 1, 7_000)
    assert (await entries(engine, account))[-1] == ("unlease", 0, -2_999, f"{lease_id}/{request}", None)


async def test_a_retired_lease_gives_back_one_nano_and_writes_nothing_for_none(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    whole, most = rid(), rid()
    for request, cost in ((whole, 3_000), (most, 2_999)):
        await run(
            engine,
            lambda c, r=request, k=cost: lease_rows.settle(
                c, lease_id, 3_000, account, r, k, None, None, give_back=True
            ),
        )
    assert await lease(engine, lease_id) == (9_999, 5_999)
    kinds = [(e[0], e[2], e[3]) for e in await entries(engine, account)]
    assert kinds[-3:] == [
        ("settle", -3_000, whole),
        ("settle", -2_999, most),
        ("unlease", -1, f"{lease_id}/{most}"),
    ]


# -- trim and end: what a retired or ended lease gives back ----------------------------------------


async def test_trim_keeps_what_calls_in_flight_may_spend_and_gives_back_the_rest(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    await run(
        engine,
        lambda c: lease_rows.settle(c, lease_id, 2_000, account, rid(), 2_000, None, None, give_back=False),
    )
    back = await run(engine, lambda c: lease_rows.trim(c, lease_id, account, lambda: 3_000))
    assert back == 5_000  # 10,000 − 2,000 consumed − 3,000 carved
    assert await lease(engine, lease_id) == (5_000, 2_000)
    assert await account_row(engine, account) == (FUNDS - 2_000, 3_000)
    assert (await entries(engine, account))[-1] == ("unlease", 0, -5_000, f"{lease_id}/trim", None)


async def test_trim_of_a_lease_with_nothing_spare_or_already_swept_gives_back_nothing(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    assert await run(engine, lambda c: lease_rows.trim(c, lease_id, account, lambda: 10_000)) == 0
    assert await lease(engine, lease_id) == (10_000, 0)
    assert await run(engine, lambda c: lease_rows.end(c, lease_id, f"{lease_id}/end")) == 10_000
    assert await run(engine, lambda c: lease_rows.trim(c, lease_id, account, lambda: 0)) == 0
    assert await run(engine, lambda c: lease_rows.end(c, lease_id, f"{lease_id}/end")) is None
    assert await account_row(engine, account) == (FUNDS, 0)
    assert [e[0] for e in await entries(engine, account)] == ["credit", "lease", "unlease"]


@pytest.mark.parametrize("consumed", [0, 4_000])
async def test_end_gives_back_what_the_lease_did_not_pay(
    engine: AsyncEngine, accounts_service: Accounts, consumed: int
) -> None:
    account = await new_account(accounts_service, credit=FUNDS)
    lease_id, _ = await take(engine, account, target=10_000)
    await set_lease(engine, lease_id, consumed_nano=consumed)
    assert await run(engine, lambda c: lease_rows.end(c, lease_id, "ref/end")) == 10_000 - consumed
    assert await lease(engine, lease_id) is None
    assert (await entries(engine, account))[-1] == ("unlease", 0, consumed - 10_000, "ref/end", None)
