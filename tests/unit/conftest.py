"""Fixtures for the unit and store tests: every store test runs on SQLite and on PostgreSQL (DESIGN §7).

`db_url` is a migrated database URL: a fresh SQLite file per test, or one PostgreSQL database per
session (created here, dropped at the end). Tests on the shared PostgreSQL database use fresh
account ids, so they never see each other's money.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.databases import PG_HOST, create_postgres_database, drop_postgres_database
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import Keys
from tollway.core.money.ledger import Ledger
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade

# `make mutate` runs on SQLite alone (TOLLWAY_TEST_BACKENDS=sqlite): a mutant changes Python that
# both backends run alike, and each mutant's tests run twice as fast. `make test` runs both.
BACKENDS = os.environ.get("TOLLWAY_TEST_BACKENDS", "sqlite,postgresql").split(",")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this session; skips (with the reason) when there is no server."""
    try:
        plain = create_postgres_database("tollway_unit")
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}: {exc}")
    url = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(plain)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating per test would cost ~0.2 s each)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database URL (sync fixture: migrations run their own event loop)."""
    if request.param == "sqlite":
        path = tmp_path / "unit.db"
        template: Path = request.getfixturevalue("sqlite_template")
        for suffix in ("", "-wal"):
            if template.with_name(template.name + suffix).exists():
                shutil.copyfile(
                    template.with_name(template.name + suffix), path.with_name(path.name + suffix)
                )
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on PostgreSQL alone, for tests of what only PostgreSQL does (locks, backends)."""
    engine = create_engine(pg_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def ledger(engine: AsyncEngine) -> AsyncIterator[Ledger]:
    ledger = Ledger(engine)
    try:
        yield ledger
    finally:
        await ledger.aclose()


@pytest.fixture
def accounts_service(engine: AsyncEngine, ledger: Ledger) -> Accounts:
    return Accounts(engine, ledger)


KEY_PEPPER = b"test-pepper"  # core/access/test_keys.py checks stored hashes against it


@pytest.fixture
def keys(engine: AsyncEngine) -> Keys:
    return Keys(engine, pepper=KEY_PEPPER, prefix="tw_", cache_seconds=5)


@pytest.fixture
def accts(engine: AsyncEngine, ledger: Ledger) -> Accounts:
    return Accounts(engine, ledger)
