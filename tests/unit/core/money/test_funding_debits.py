"""Funding debits (a card refund or dispute, core/funding/stripe_topups.py) may take an account's available
balance below zero (migration 0011 dropped the available_nonnegative CHECK). These tests show that nothing
else can: a hold refuses (402) while available < amount, negative available included, with budget leases
too; a settlement charges at most hold + max(available, 0), so never takes available further down; an
operator credit lands on a negative balance, an operator debit still never makes one. SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid
from tollway.core.access.accounts import Accounts
from tollway.core.money import charges
from tollway.core.money.amounts import MAX_NANO
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError


async def fund(engine: AsyncEngine, account: str, amount: int, kind: str, reference: str) -> bool:
    async with engine.begin() as conn:
        return await conn.run_sync(lambda c: charges.fund(c, account, amount, kind, reference))


async def exact(ledger: Ledger, account: str) -> tuple[int, int]:
    """balance and reserved, checked against the ledger's sums (the invariant that stays)."""
    balance, reserved = await ledger.balances(account)
    assert await ledger.ledger_sums(account) == (balance, reserved)
    assert reserved >= 0
    return balance, reserved


async def test_a_funding_debit_may_go_negative_and_is_one_entry(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    assert await fund(engine, account, -1_500, "adjust", "stripe:evt_1") is True
    assert await exact(ledger, account) == (-500, 0)
    assert (await ledger_rows(engine, account))[-1] == ("adjust", -1_500, 0, "stripe:evt_1")
    with pytest.raises(IntegrityError):  # the same reference twice: the unique ledger key refuses it
        await fund(engine, account, -1_500, "adjust", "stripe:evt_1")
    assert await exact(ledger, account) == (-500, 0)
    assert await fund(engine, account, 700, "credit", "stripe:cs_1") is True
    assert await exact(ledger, account) == (200, 0)


async def test_fund_refuses_a_missing_account_the_ceiling_and_zero(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    assert await fund(engine, "acct_missing", 10, "credit", "stripe:x") is False
    account = await new_account(accounts_service, credit=MAX_NANO - 10)
    assert await fund(engine, account, 11, "credit", "stripe:over") is False
    assert await fund(engine, account, 10, "credit", "stripe:at") is True
    assert await exact(ledger, account) == (MAX_NANO, 0)
    assert await fund(engine, account, 1, "credit", "stripe:one") is False  # the smallest credit too
    assert await exact(ledger, account) == (MAX_NANO, 0)
    with pytest.raises(ValueError, match=r"^a funding entry moves money$"):  # a caller's bug, said so
        await fund(engine, account, 0, "credit", "stripe:zero")


@pytest.mark.parametrize("amount", [1, 500, 2_000])
async def test_a_hold_refuses_while_available_is_negative(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts, amount: int
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    await fund(engine, account, -1_001, "adjust", f"stripe:{secrets.token_hex(4)}")
    before = await ledger_rows(engine, account)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), amount)
    assert (
        info.value.code is ErrorCode.INSUFFICIENT_BALANCE and info.value.extra["available"] == "-0.000000001"
    )
    with pytest.raises(TollwayError):  # a shrinkable chat hold cannot shrink below nothing
        await ledger.reserve(account, rid(), amount, least_nano=1)
    assert await ledger_rows(engine, account) == before
    assert await exact(ledger, account) == (-1, 0)


async def test_budget_leases_refuse_a_negative_account_too(
    engine: AsyncEngine, accounts_service: Accounts
) -> None:
    ledger = Ledger(engine, lease_seconds=60, budget_leases=True)
    try:
        account = await new_account(accounts_service, credit=1_000)
        await fund(engine, account, -2_000, "adjust", "stripe:evt_lease")
        with pytest.raises(TollwayError) as info:
            await ledger.reserve(account, rid(), 1)
        assert info.value.code is ErrorCode.INSUFFICIENT_BALANCE
        assert await exact(ledger, account) == (-1_000, 0)
    finally:
        await ledger.aclose()


async def test_settlement_never_takes_a_negative_available_further_down(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=1_000)
    within, beyond = rid(), rid()
    await ledger.reserve(account, within, 300)
    await ledger.reserve(account, beyond, 300)
    # A dispute lands while both calls run: balance 1000 - 1200 = -200, reserved 600, available -800.
    await fund(engine, account, -1_200, "adjust", "stripe:evt_dispute")
    assert await exact(ledger, account) == (-200, 600)
    # Within its hold a call is paid from the hold, which was set aside before the dispute.
    assert await ledger.settle(account, within, 200) == 200
    assert await exact(ledger, account) == (-400, 300)  # available -700: up by the unspent 100
    # Beyond its hold: the hold, plus nothing of a negative available (not hold + available = -500 → 0).
    assert await ledger.settle(account, beyond, 5_000) == 300
    assert await exact(ledger, account) == (-700, 0)  # available -700, as before this settlement


async def test_operator_credit_lands_on_a_negative_balance_and_a_debit_never_makes_one(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=100)
    await fund(engine, account, -300, "adjust", "stripe:evt_refund")
    assert await ledger.credit(account, 50, reference="op-1") is True
    assert await exact(ledger, account) == (-150, 0)
    with pytest.raises(TollwayError):
        await ledger.credit(account, -1, reference="adj-1", kind="adjust")
    assert await ledger.credit(account, 200, reference="op-2") is True
    assert await ledger.credit(account, -50, reference="adj-2", kind="adjust") is True
    assert await exact(ledger, account) == (0, 0)
    with pytest.raises(TollwayError):
        await ledger.credit(account, -1, reference="adj-3", kind="adjust")
