"""Engine construction: one async engine per process, tuned per database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import URL, Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str) -> AsyncEngine:
    # isolation_level=None hands transaction control to us, so every transaction can start with
    # BEGIN IMMEDIATE: SQLite then takes the write lock up front, and concurrent writers wait for it
    # (busy_timeout) instead of failing with "database is locked" when a read lock is upgraded.
    engine = create_async_engine(url, connect_args={"isolation_level": None, "timeout": 30}, pool_size=8)
    _tune_sqlite(engine.sync_engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Transactor:
    """Runs a transaction body `fn(connection)` written once as plain synchronous SQLAlchemy Core.

    SQLite: on one dedicated writer thread with the stdlib driver — SQLite serialises writers
    anyway, and one thread hop per transaction costs far less than aiosqlite's hop per statement.
    PostgreSQL: on the async engine through `run_sync`, so asyncpg does the I/O.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._sync = _sqlite_sync_engine(engine.url.set(drivername="sqlite"))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="tollway-sqlite-writer")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if self._sync is None:
            async with self._engine.begin() as conn:
                return await conn.run_sync(fn)
        sync = self._sync

        def in_thread() -> T:
            with sync.begin() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._writer, in_thread)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._writer is not None:
            self._writer.shutdown(wait=False)


def _sqlite_sync_engine(url: URL) -> Engine:
    engine = sqlalchemy.create_engine(
        url, connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False}
    )
    _tune_sqlite(engine)
    return engine
