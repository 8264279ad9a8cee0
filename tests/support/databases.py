"""The machine's databases for tests: fresh PostgreSQL databases, and plain SQL reads of either backend.

Every test layer (unit, money, contract) makes its PostgreSQL databases here and reads the money
straight from the tables here, so a test's idea of "what the database says" is written once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import asyncpg

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")  # trust auth: whichever role the machine has


async def _admin() -> tuple[asyncpg.Connection, str]:
    errors: list[str] = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(f"postgresql://{user}@{PG_HOST}/test", timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{user}: {type(exc).__name__}: {exc}")
            continue
        return conn, user
    raise ConnectionError("; ".join(errors))


def create_postgres_database(prefix: str, template: str | None = None) -> str:
    """A fresh, empty database (a copy of the database at URL `template`, which no one may be connected
    to); its plain postgresql:// URL.

    Raises OSError (ConnectionError: why) when no server answers, asyncpg.PostgresError when it refuses."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def create() -> str:
        conn, user = await _admin()
        try:
            copy = f' template "{template.rsplit("/", 1)[1]}"' if template else ""
            await conn.execute(f'create database "{name}"{copy}')  # asyncpg runs this outside a transaction
        finally:
            await conn.close()
        return user

    user = asyncio.run(create())
    return f"postgresql://{user}@{PG_HOST}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        conn, _ = await _admin()
        try:
            await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()

    asyncio.run(drop())


def query(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` (`?` placeholders) on a plain sqlite:/// or postgresql:// URL."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql, args)]
    numbered = sql
    for i in range(1, len(args) + 1):
        numbered = numbered.replace("?", f"${i}", 1)

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())
