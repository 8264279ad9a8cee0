"""Engine construction: one async engine per process, tuned per database, and the ledger writer's
own (store/transactor.py).

Every engine hides SQL parameters in its errors (`hide_parameters=True`): a failed statement's
message would otherwise carry its values (key hashes, labels) into the logs. prepared.py does the
same for the statements it runs itself; telemetry/logs.py removes what the database itself echoes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import URL, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(url: str, pool_size: int = 20, max_overflow: int = 20) -> AsyncEngine:
    """PostgreSQL: each replica holds up to pool_size + max_overflow connections (docs/deploy.md),
    plus its ledger writer's (`postgres_writer_engine`).

    Connections are pinged when checked out: a connection that died in the pool (a database
    restart) would otherwise fail the request that drew it."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, hide_parameters=True
    )


def postgres_writer_engine(url: URL) -> AsyncEngine:
    """The PostgreSQL Transactor's (store/transactor.py): one connection, never pinged.

    A ping is a round trip per checkout, on the path of every call's hold and settlement; the
    Transactor runs a batch again on a new connection when its connection turns out dead instead."""
    return create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)


def _sqlite_engine(url: str) -> AsyncEngine:
    # isolation_level=None hands transaction control to us, so every transaction can start with
    # BEGIN IMMEDIATE: SQLite then takes the write lock up front, and concurrent writers wait for it
    # (busy_timeout) instead of failing with "database is locked" when a read lock is upgraded.
    engine = create_async_engine(
        url, connect_args={"isolation_level": None, "timeout": 30}, pool_size=8, hide_parameters=True
    )
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


def sqlite_writer_engine(url: URL) -> Engine:
    """The SQLite Transactor's (store/transactor.py): the stdlib driver, on its writer thread."""
    engine = sqlalchemy.create_engine(
        url,
        connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
        hide_parameters=True,
    )
    _tune_sqlite(engine)
    return engine
