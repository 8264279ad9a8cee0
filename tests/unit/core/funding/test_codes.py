"""Redemption codes on SQLite and PostgreSQL (issue 25): minted hashed, redeemed exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.funding.codes import Codes
from tollway.errors import ErrorCode, TollwayError
from tollway.store.funding_tables import redemption_codes
from tollway.store.tables import accounts as accounts_table
from tollway.store.tables import ledger as ledger_table

PEPPER = b"code-pepper"
DOLLAR = 1_000_000_000


@pytest.fixture
async def codes(engine: AsyncEngine) -> AsyncIterator[Codes]:
    service = Codes(engine, pepper=PEPPER)
    try:
        yield service
    finally:
        await service.aclose()


async def new_account(accts: Accounts) -> str:
    return (await accts.create(f"codes-{secrets.token_hex(3)}", credit_nano=0)).id


async def balance_and_entries(engine: AsyncEngine, account_id: str) -> tuple[int, list[tuple[int, str]]]:
    async with engine.connect() as conn:
        balance = (
            await conn.execute(select(accounts_table.c.balance_nano).where(accounts_table.c.id == account_id))
        ).scalar_one()
        rows = (
            await conn.execute(
                select(ledger_table.c.amount_nano, ledger_table.c.reference)
                .where(ledger_table.c.account_id == account_id)
                .where(ledger_table.c.kind == "credit")
            )
        ).all()
    return int(balance), [(int(a), str(r)) for a, r in rows]


async def test_mint_stores_only_hashes_and_redeem_credits_once(
    engine: AsyncEngine, codes: Codes, accts: Accounts
) -> None:
    account = await new_account(accts)
    batch, minted = await codes.mint(5 * DOLLAR, 3)
    assert len({m.code for m in minted}) == 3
    async with engine.connect() as conn:
        stored = (
            await conn.execute(select(redemption_codes).where(redemption_codes.c.batch_id == batch))
        ).all()
    plain = {m.code for m in minted}
    assert all(
        row.code_hash not in plain and row.code_hash == codes.hash(m)
        for row, m in zip(
            sorted(stored, key=lambda r: r.id),
            [m.code for m in sorted(minted, key=lambda m: m.id)],
            strict=True,
        )
    )
    result = await codes.redeem(account, minted[0].code)
    assert result.amount_nano == 5 * DOLLAR
    with pytest.raises(TollwayError) as used:
        await codes.redeem(account, minted[0].code)
    assert used.value.code is ErrorCode.CONFLICT and "already been redeemed" in used.value.message
    assert await balance_and_entries(engine, account) == (5 * DOLLAR, [(5 * DOLLAR, f"code:{minted[0].id}")])


async def test_wrong_expired_and_foreign_codes_get_distinct_errors_and_credit_nothing(
    engine: AsyncEngine, codes: Codes, accts: Accounts
) -> None:
    account, other = await new_account(accts), await new_account(accts)
    _, [expired] = await codes.mint(DOLLAR, 1, expires_at=utcnow() - timedelta(seconds=1))
    _, [foreign] = await codes.mint(DOLLAR, 1, account_id=other)
    errors = {}
    for name, code in (
        ("wrong", "twc_" + secrets.token_urlsafe(18)),
        ("expired", expired.code),
        ("foreign", foreign.code),
    ):
        with pytest.raises(TollwayError) as caught:
            await codes.redeem(account, code)
        errors[name] = caught.value
    assert errors["wrong"].code is ErrorCode.NOT_FOUND
    assert errors["expired"].code is ErrorCode.VALIDATION and "expired" in errors["expired"].message
    assert errors["foreign"].code is ErrorCode.UNAUTHORIZED and "another account" in errors["foreign"].message
    assert await balance_and_entries(engine, account) == (0, [])
    # The foreign code still works for its own account.
    await codes.redeem(other, foreign.code)
    assert await balance_and_entries(engine, other) == (DOLLAR, [(DOLLAR, f"code:{foreign.id}")])


async def test_mint_validates(codes: Codes) -> None:
    for amount, count in ((0, 1), (DOLLAR, 0), (DOLLAR, 1001)):
        with pytest.raises(TollwayError) as caught:
            await codes.mint(amount, count)
        assert caught.value.code is ErrorCode.VALIDATION
    with pytest.raises(TollwayError) as missing:
        await codes.mint(DOLLAR, 1, account_id="acct_nope")
    assert missing.value.code is ErrorCode.NOT_FOUND


async def test_concurrent_redeems_of_one_code_one_wins(engine: AsyncEngine, accts: Accounts) -> None:
    """Ten redeemers, each with its own Codes (its own writer), race one code: one credit, nine 409s."""
    accounts = [await new_account(accts) for _ in range(10)]
    services = [Codes(engine, pepper=PEPPER) for _ in range(10)]
    try:
        _, [code] = await services[0].mint(7 * DOLLAR, 1)
        results = await asyncio.gather(
            *(s.redeem(a, code.code) for s, a in zip(services, accounts, strict=True)), return_exceptions=True
        )
    finally:
        for s in services:
            await s.aclose()
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, TollwayError)]
    assert len(wins) == 1 and len(losses) == 9, results
    assert all(loss.code is ErrorCode.CONFLICT for loss in losses)
    balances = [await balance_and_entries(engine, a) for a in accounts]
    assert sorted(b for b, _ in balances) == [0] * 9 + [7 * DOLLAR]
    assert sum(len(entries) for _, entries in balances) == 1
