"""What a per-call hold's ledger entries record beside the money (core/money/ledger.py, charges.py):
the key that made each entry, and a shortfall warning only when a settlement really fell short.
Survivors of the mutation run (docs/testing.md); SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.money.test_ledger import new_account, rid
from tests.unit.helpers import assert_invariants
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.store.tables import ledger as ledger_table


async def entries(engine: AsyncEngine, reference: str) -> list[tuple[str, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ledger_table.c.kind, ledger_table.c.key_id)
            .where(ledger_table.c.reference == reference)
            .order_by(ledger_table.c.id)
        )
        return [(str(kind), key_id) for kind, key_id in rows]


async def test_a_key_s_hold_and_its_settlement_both_name_the_key(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger
) -> None:
    account = await new_account(accounts_service, credit=10_000)
    key_id = f"key_{secrets.token_hex(4)}"
    request_id = rid()
    await ledger.reserve(account, request_id, 1_000, key_id=key_id)
    assert await ledger.settle(account, request_id, 400) == 400
    assert await entries(engine, request_id) == [("reserve", key_id), ("settle", key_id)]
    await assert_invariants(ledger, engine, account)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings() -> Iterator[Records]:
    """The ledger's warnings, on its own logger: a server started earlier in the process may have
    stopped it propagating to the root logger that caplog listens on."""
    handler, logger = Records(), logging.getLogger("tollway.ledger")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_shortfall_is_logged_only_when_the_charge_falls_short_of_the_cost(
    engine: AsyncEngine, accounts_service: Accounts, ledger: Ledger, warnings: Records
) -> None:
    account = await new_account(accounts_service, credit=5_000)
    paid, short = rid(), rid()
    await ledger.reserve(account, paid, 1_000)
    assert await ledger.settle(account, paid, 3_000) == 3_000  # past its hold, but the balance pays it
    assert [m for m in warnings.messages if "shortfall" in m] == []
    await ledger.reserve(account, short, 1_000)
    assert await ledger.settle(account, short, 9_000) == 2_000  # all that was left
    assert [m for m in warnings.messages if "shortfall" in m] == [
        f"shortfall: request {short} cost 9000 nano-USD, 2000 could be charged"
    ]
    assert await assert_invariants(ledger, engine, account) == (0, 0)
