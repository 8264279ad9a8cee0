"""Engine construction: one async engine per process, tuned per database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str) -> AsyncEngine:
    # isolation_level=None hands transaction control to us, so every transaction can start with
    # BEGIN IMMEDIATE: SQLite then takes the write lock up front, and concurrent writers wait for it
    # (busy_timeout) instead of failing with "database is locked" when a read lock is upgraded.
    engine = create_async_engine(url, connect_args={"isolation_level": None, "timeout": 30}, pool_size=8)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
