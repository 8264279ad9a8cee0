"""Fixtures of the money unit tests beyond tests/unit/conftest.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.money.ledger import Ledger


@pytest.fixture
async def leased(engine: AsyncEngine) -> AsyncIterator[Ledger]:
    """A second ledger on the same database with budget leases on (core/money/leases.py); 60 s leases:
    carving stops 40 s after a renewal."""
    ledger = Ledger(engine, lease_seconds=60, budget_leases=True)
    try:
        yield ledger
    finally:
        await ledger.aclose()
