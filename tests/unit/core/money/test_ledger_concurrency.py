"""Reservations under contention: one conditional UPDATE, so exactly the funded number succeed (DESIGN §4)."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.helpers import assert_invariants
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger, Reservation
from tollway.errors import ErrorCode, TollwayError

FUNDED = 20
ATTEMPTS = 200
AMOUNT = 1_234_567  # nano-USD per reservation


async def test_concurrent_reservations_never_overdraw(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    initial = FUNDED * AMOUNT
    account = (await accounts_service.create("contended", credit_nano=initial)).id
    tag = secrets.token_hex(6)

    results = await asyncio.gather(
        *(ledger.reserve(account, f"race_{tag}_{i}", AMOUNT) for i in range(ATTEMPTS)),
        return_exceptions=True,
    )
    held = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, TollwayError)]
    unexpected = [r for r in results if not isinstance(r, Reservation | TollwayError)]
    assert unexpected == []
    assert len(held) == FUNDED
    assert len(refused) == ATTEMPTS - FUNDED
    assert {e.code for e in refused} == {ErrorCode.INSUFFICIENT_BALANCE}
    assert sorted(r.available_before_nano for r in held) == [AMOUNT * (i + 1) for i in range(FUNDED)]
    assert await ledger.balances(account) == (initial, initial)
    await assert_invariants(ledger, engine, account)

    to_settle, to_release = held[: FUNDED // 2], held[FUNDED // 2 :]
    outcomes = await asyncio.gather(
        *(ledger.settle(account, r.request_id, AMOUNT) for r in to_settle),
        *(ledger.release(r.request_id) for r in to_release),
    )
    assert outcomes == [AMOUNT] * len(to_settle) + [True] * len(to_release)
    assert await ledger.balances(account) == (initial - (FUNDED // 2) * AMOUNT, 0)
    await assert_invariants(ledger, engine, account)
