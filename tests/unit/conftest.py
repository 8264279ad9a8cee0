"""Fixtures for the unit and store tests: every store test runs on SQLite and on PostgreSQL (DESIGN §7).

`db_url` is a migrated database URL: a fresh SQLite file per test, or one PostgreSQL database per
session (created here, dropped at the end). Tests on the shared PostgreSQL database use fresh
account ids, so they never see each other's money.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.accounts import Accounts
from tollway.core.ledger import Ledger
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")
# `make mutate` runs on SQLite alone (TOLLWAY_TEST_BACKENDS=sqlite): a mutant changes Python that
# both backends run alike, and each mutant's tests run twice as fast. `make test` runs both.
BACKENDS = os.environ.get("TOLLWAY_TEST_BACKENDS", "sqlite,postgresql").split(",")


async def _pg_admin() -> tuple[asyncpg.Connection, str]:
    errors: list[str] = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(f"postgresql://{user}@{PG_HOST}/test", timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{user}: {type(exc).__name__}: {exc}")
            continue
        return conn, user
    raise ConnectionError("; ".join(errors))


async def _create_pg_database(name: str) -> str:
    conn, user = await _pg_admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # asyncpg runs this outside a transaction
    finally:
        await conn.close()
    return user


async def _drop_pg_database(name: str) -> None:
    conn, _ = await _pg_admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this session; skips (with the reason) when there is no server."""
    name = f"tollway_unit_{secrets.token_hex(6)}"
    try:
        user = asyncio.run(_create_pg_database(name))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}: {exc}")
    url = f"postgresql+asyncpg://{user}@{PG_HOST}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_drop_pg_database(name))


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
def ledger(engine: AsyncEngine) -> Ledger:
    return Ledger(engine)


@pytest.fixture
def accounts_service(engine: AsyncEngine, ledger: Ledger) -> Accounts:
    return Accounts(engine, ledger)
