"""Engine construction: one async engine per process, tuned per database.

Every engine hides SQL parameters in its errors (`hide_parameters=True`): a failed statement's
message would otherwise carry its values (key hashes, labels) into the logs. prepared.py does the
same for the statements it runs itself; telemetry/logs.py removes what the database itself echoes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy
from sqlalchemy import URL, Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")


def create_engine(url: str, pool_size: int = 20, max_overflow: int = 20) -> AsyncEngine:
    """PostgreSQL: each replica holds up to pool_size + max_overflow connections (docs/deploy.md)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, hide_parameters=True
    )


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


class Transactor:
    """Runs a transaction body `fn(connection)` written once as plain synchronous SQLAlchemy Core.

    SQLite: on one dedicated writer thread with the stdlib driver, with group commit: the bodies
    queued while the writer was busy run together in one transaction, each inside its own
    SAVEPOINT (so one body's failure rolls back only that body), and every caller learns its
    outcome only after the shared COMMIT. SQLite serialises writers anyway; this turns N commits
    into one and N thread hops into one.
    PostgreSQL: on the async engine through `run_sync`, so asyncpg does the I/O; concurrent
    commits already share WAL flushes there.
    """

    MAX_BATCH = 128

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: deque[_Job[Any]] = deque()
        if engine.dialect.name == "sqlite":
            self._sync = _sqlite_sync_engine(engine.url.set(drivername="sqlite"))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="tollway-sqlite-writer")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if self._sync is None:
            async with self._engine.begin() as conn:
                return await conn.run_sync(fn)
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, loop.create_future(), loop)
        self._pending.append(job)
        # Every job schedules a drain; a drain that finds the queue already emptied by the one
        # before it returns at once.
        loop.run_in_executor(self._writer, self._drain)
        return await job.future

    def _drain(self) -> None:
        assert self._sync is not None
        while self._pending:
            batch: list[_Job[Any]] = []
            while self._pending and len(batch) < self.MAX_BATCH:
                batch.append(self._pending.popleft())
            outcomes: list[tuple[bool, Any]] = []
            if len(batch) == 1:  # alone: its own transaction, no SAVEPOINT round (most calls at low load)
                try:
                    with self._sync.begin() as conn:
                        outcomes.append((True, batch[0].fn(conn)))
                except BaseException as exc:  # rolled back, or the COMMIT failed: nothing landed
                    outcomes = [(False, exc)]
                batch[0].loop.call_soon_threadsafe(_settle_future, batch[0].future, *outcomes[0])
                continue
            try:
                with self._sync.begin() as conn:
                    for job in batch:
                        savepoint = conn.begin_nested()
                        try:
                            result = job.fn(conn)
                        except BaseException as exc:  # delivered to its caller; the batch goes on
                            savepoint.rollback()
                            outcomes.append((False, exc))
                        else:
                            savepoint.commit()
                            outcomes.append((True, result))
            except BaseException as exc:  # the COMMIT itself failed: nobody's changes landed
                outcomes = [(False, exc)] * len(batch)
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                job.loop.call_soon_threadsafe(_settle_future, job.future, ok, value)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
        if self._writer is not None:
            self._writer.shutdown(wait=False)


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _settle_future(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _sqlite_sync_engine(url: URL) -> Engine:
    engine = sqlalchemy.create_engine(
        url,
        connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
        hide_parameters=True,
    )
    _tune_sqlite(engine)
    return engine
