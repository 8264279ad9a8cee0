"""The account's 402 (core/money/charges.py `insufficient`): the message a caller reads and every field of it.

A client shows the message as is and reads `required`, `available` and `limit_source` to tell an empty account
from a key's own limit (README § Errors), so each is pinned exactly.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import ledger_rows, new_account, rid
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError


async def test_a_hold_over_the_balance_is_a_402_that_names_both_figures_and_what_to_do(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = await new_account(accounts_service, credit=2_000_000_000)  # $2
    await ledger.reserve(account, rid(), 500_000_000)
    before = await ledger_rows(engine, account)
    with pytest.raises(TollwayError) as info:
        await ledger.reserve(account, rid(), 1_500_000_007)
    err = info.value
    assert (err.code, err.status) == (ErrorCode.INSUFFICIENT_BALANCE, 402)
    assert err.message == (
        "This request may cost up to $1.500000007 but the available balance is $1.500000000. "
        "Top up, or set a lower max_tokens."
    )
    assert err.extra == {"required": "1.500000007", "available": "1.500000000", "limit_source": "account"}
    assert await ledger.balances(account) == (2_000_000_000, 500_000_000)
    assert await ledger_rows(engine, account) == before
