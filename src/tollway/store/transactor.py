"""The Transactor: every ledger transaction body, written once as plain synchronous SQLAlchemy Core,
run with group commit on both databases.

Bodies queued while a transaction runs go together into the next one (at most MAX_BATCH), each
inside its own SAVEPOINT: a body that raises (a 402, an IntegrityError for a reference already
applied) rolls back only its own changes and its caller alone gets the exception. Every caller
learns its outcome only after the shared COMMIT, so a hold or a settlement has landed before the
call goes on. A body alone runs in its own transaction, without the SAVEPOINT round trips.

- SQLite: on one dedicated writer thread with the stdlib driver. SQLite serialises writers
  anyway; this turns N commits into one and N thread hops into one.
- PostgreSQL: one drainer task per Transactor (so per process), on its own connection from a
  private pool of one without pre-ping (store/db.py `postgres_writer_engine`); the batch runs in
  one `run_sync` call. The account row is locked from a batch's first body to its COMMIT: before,
  every call's transaction held it across its own round trips while the loop served others, and
  the calls queued on the lock (docs/benchmarks.md). Now one process's calls queue here instead,
  in Python, and pay one COMMIT per batch. A second drainer would only queue on the same row
  lock, and two batches of one process could then deadlock each other.
  MAX_BATCH is 64 because PostgreSQL keeps up to 64 subtransaction ids per session in shared
  memory: past that (a SAVEPOINT per writing body) every other session's snapshot overflows to
  pg_subtrans, a known slowdown.

A batch whose transaction fails as a whole (its connection died, or the COMMIT failed) runs once
more on a fresh connection, then fails every body with the error. Why retrying is right:
- Failed before COMMIT was sent, or the COMMIT returned an error: nothing committed, so running
  the bodies again is the same as running them for the first time.
- The connection died during the COMMIT: the batch may or may not have committed, and no one can
  tell. Failing every body then tells callers "no" when the answer may be "yes" (a settle whose
  caller then releases its hold would charge nothing). Running the bodies again is safe because
  every body is pure database work (no I/O or state outside the transaction: the ledger's bodies,
  key_limits.reserve, rollup.add and jobs' insert_job are; a shortfall warning may be logged
  twice) and cannot apply twice: the reservation's primary key is the request id, every ledger
  row has a unique (account, kind, reference), a release deletes the row it frees, and a renewal
  sets an absolute expiry. A body that did commit the first time therefore fails the second time
  on that key and is rolled back: credit returns False and settle 0 ("already applied"), release
  False; a retried reserve raises IntegrityError, so its caller fails although the hold exists,
  which then expires with its lease (a job's hold with its job row, which the worker runs).
  Any new body must keep both properties.
So a caller that gets a result knows its body committed exactly once; an error, as from any
database whose COMMIT was lost, does not prove that nothing did.

A body that PostgreSQL aborted as a deadlock victim or a serialization failure (two replicas'
batches locking two accounts in opposite orders) is rolled back to its SAVEPOINT and run once
more in the next batch, after this batch's COMMIT has released the locks the other one waits for.

A body may come with a set-based form (`run(fn, many=..., item=...)`): bodies of one batch that share
`many` run as one call `many(conn, items)` inside one SAVEPOINT, one statement per table for the
whole group instead of one per body each; on PostgreSQL every statement is a round trip on the
drainer's connection, paid while the whole process waits on the batch (docs/benchmarks.md). `many`
must leave the database as running each body in turn would and return each body's result in order;
when it raises (a row it expected was not there, a reference already applied, a CHECK), its
SAVEPOINT is rolled back and every body of the group runs alone, so each caller gets its own
outcome. A group of one runs alone.

A caller cancelled before its body ran is dropped from the queue; once its batch has started the
body runs and may commit (the lease sweeper frees a hold nobody owns). One Transactor serves one
event loop. `batches`, `retries` and `grouped` count transactions, re-run batches and bodies run
in a set-based group (tests read them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.store.db import postgres_writer_engine, sqlite_writer_engine

T = TypeVar("T")
_Outcome = tuple[bool, Any]  # (True, the body's result) or (False, its exception)
_TRANSIENT = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


class Transactor:
    MAX_BATCH = 64
    CLOSE_SECONDS = 10.0

    def __init__(self, engine: AsyncEngine) -> None:
        self.batches = 0  # transactions run (one per batch)
        self.retries = 0  # batches run again after their transaction failed as a whole
        self.grouped = 0  # bodies whose outcome came from a set-based group
        self._pending: deque[_Job[Any]] = deque()
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._async: AsyncEngine | None = None
        self._drainer: asyncio.Task[None] | None = None
        if engine.dialect.name == "sqlite":
            self._sync = sqlite_writer_engine(engine.url.set(drivername="sqlite"))
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tollway-sqlite-writer")
        else:
            self._async = postgres_writer_engine(engine.url)

    async def run(
        self,
        fn: Callable[[Connection], T],
        *,
        many: Callable[[Connection, list[Any]], list[T]] | None = None,
        item: Any = None,
    ) -> T:
        """Run `fn` in the next batch; with `many`, together with the batch's other bodies of that
        `many` as `many(conn, [their items])` when there are some (the module's docstring)."""
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, loop.create_future(), loop, many, item)
        self._pending.append(job)
        if self._thread is not None:
            # Every job schedules a drain; a drain that finds the queue already emptied by the one
            # before it returns at once.
            loop.run_in_executor(self._thread, self._drain_sqlite)
        elif self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain_postgres())
        return await job.future

    def _take(self) -> list[_Job[Any]]:
        batch: list[_Job[Any]] = []
        while self._pending and len(batch) < self.MAX_BATCH:
            job = self._pending.popleft()
            if not job.future.cancelled():  # its caller gave up before it ran: it never will
                batch.append(job)
        return batch

    def _finish(self, batch: list[_Job[Any]], outcomes: list[_Outcome]) -> list[tuple[_Job[Any], bool, Any]]:
        """The outcomes to deliver; a deadlock victim goes back to the head of the queue, once."""
        done: list[tuple[_Job[Any], bool, Any]] = []
        again: list[_Job[Any]] = []
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            self.grouped += job.grouped
            if not ok and not job.again and _transient(value):
                job.again = True
                again.append(job)
            else:
                done.append((job, ok, value))
        self._pending.extendleft(reversed(again))
        return done

    def _drain_sqlite(self) -> None:
        assert self._sync is not None
        while self._pending:
            batch = self._take()
            if not batch:
                continue
            try:
                with self._sync.connect() as conn:
                    outcomes = _run_batch(conn, batch)
            except _Lost as lost:  # SQLite has no connection to lose: no second attempt
                outcomes = [(False, lost.error)] * len(batch)
            except BaseException as exc:
                outcomes = [(False, exc)] * len(batch)
            self.batches += 1
            for job, ok, value in self._finish(batch, outcomes):
                job.loop.call_soon_threadsafe(_settle_future, job.future, ok, value)

    async def _drain_postgres(self) -> None:
        conn: AsyncConnection | None = None
        batch: list[_Job[Any]] = []
        try:
            while True:
                while self._pending:
                    batch = self._take()
                    if batch:
                        outcomes, conn = await self._attempt(batch, conn)
                        for job, ok, value in self._finish(batch, outcomes):
                            _settle_future(job.future, ok, value)
                    batch = []
                # No await between finding the queue empty and returning: run() starts a new
                # drainer only once this one is done, so a job queued meanwhile would wait forever.
                if conn is None:
                    return
                await conn.close()  # back to the private pool until the next busy spell
                conn = None
        except BaseException as exc:  # cancelled (aclose, loop shutdown) mid-batch, or a bug
            for job in (*batch, *self._pending):
                if isinstance(exc, Exception):
                    _settle_future(job.future, False, exc)
                else:
                    job.future.cancel()
            self._pending.clear()
            if conn is not None:
                await _discard(conn)  # perhaps mid-transaction: the server rolls it back
            raise

    async def _attempt(
        self, batch: list[_Job[Any]], conn: AsyncConnection | None
    ) -> tuple[list[_Outcome], AsyncConnection | None]:
        """Run the batch; once more on a new connection if its transaction failed as a whole."""
        assert self._async is not None
        error: Exception | None = None
        for attempt in range(2):
            if attempt:
                self.retries += 1
            try:
                if conn is None:
                    conn = await self._async.connect()
                self.batches += 1
                return await conn.run_sync(_run_batch, batch), conn
            except Exception as exc:  # _Lost, or no connection could be made
                error = exc.error if isinstance(exc, _Lost) else exc
                if conn is not None:
                    await _discard(conn)
                    conn = None
        return [(False, error)] * len(batch), None

    async def aclose(self) -> None:
        """Let the queued bodies finish (for CLOSE_SECONDS at most), then close the writer."""
        if self._drainer is not None and not self._drainer.done():
            _, late = await asyncio.wait({self._drainer}, timeout=self.CLOSE_SECONDS)
            for task in late:
                task.cancel()
                await asyncio.wait({task})
        if self._async is not None:
            await self._async.dispose()
        if self._sync is not None:
            self._sync.dispose()
        if self._thread is not None:
            self._thread.shutdown(wait=False)


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    many: Callable[[Connection, list[Any]], list[T]] | None = None
    item: Any = None
    again: bool = False  # already put back once, as a deadlock victim
    grouped: bool = False  # its outcome came from its set-based group


class NotTogether(Exception):
    """Raised by a set-based form for a group it does not take (a row not as it expected): its bodies
    then run one by one. Any exception does that; this one says it was expected."""


class _Lost(Exception):
    """The batch's transaction failed as a whole: nothing committed, unless it was the COMMIT."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _run_batch(conn: Connection, batch: list[_Job[Any]]) -> list[_Outcome]:
    """One transaction for the batch, committed; each body's outcome, or _Lost."""
    try:
        with conn.begin() as transaction:
            if len(batch) > 1:
                return _run_bodies(conn, batch)
            try:  # alone: its own transaction, no SAVEPOINT round trips
                return [(True, batch[0].fn(conn))]
            except Exception as exc:
                if _broken(conn, exc):
                    raise
                transaction.rollback()
                return [(False, exc)]
    except Exception as exc:
        raise _Lost(exc) from exc


def _run_bodies(conn: Connection, batch: list[_Job[Any]]) -> list[_Outcome]:
    """Each body in its SAVEPOINT, except groups sharing a set-based form: one SAVEPOINT each."""
    groups: dict[Any, list[int]] = {}
    for i, job in enumerate(batch):
        if job.many is not None:
            groups.setdefault(job.many, []).append(i)
    outcomes: list[_Outcome | None] = [None] * len(batch)
    for i, job in enumerate(batch):
        if outcomes[i] is not None:
            continue
        members = groups.get(job.many, []) if job.many is not None else []
        if len(members) > 1 and members[0] == i:
            results = _together(conn, [batch[j] for j in members])
            if results is not None:
                for j, result in zip(members, results, strict=True):
                    batch[j].grouped = True
                    outcomes[j] = (True, result)
                continue
        outcomes[i] = _savepointed(conn, job)
    return [outcome for outcome in outcomes if outcome is not None]


def _together(conn: Connection, jobs: list[_Job[Any]]) -> list[Any] | None:
    """The group's set-based run in one SAVEPOINT; None when it raised (then each runs alone)."""
    many = jobs[0].many
    assert many is not None
    savepoint = conn.begin_nested()
    try:
        results = many(conn, [job.item for job in jobs])
        if len(results) != len(jobs):
            raise RuntimeError("a set-based body returned a result count unlike its bodies'")
    except Exception as exc:
        if _broken(conn, exc):
            raise
        savepoint.rollback()
        return None
    savepoint.commit()
    return results


def _savepointed(conn: Connection, job: _Job[Any]) -> _Outcome:
    savepoint = conn.begin_nested()
    try:
        result = job.fn(conn)
    except Exception as exc:
        if _broken(conn, exc):
            raise
        savepoint.rollback()  # raises when the transaction itself is gone: the batch is lost
        return False, exc
    savepoint.commit()
    return True, result


def _broken(conn: Connection, exc: Exception) -> bool:
    """Whether `exc` took the connection (and the transaction) with it, not just one statement."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or conn.invalidated:
        return True
    # The ledger's prepared statements run on the driver's cursor (store/prepared.py), so
    # SQLAlchemy has not asked the dialect whether this was a disconnect: ask it here.
    dbapi = conn.connection.dbapi_connection
    return dbapi is None or bool(conn.dialect.is_disconnect(exc.orig, dbapi, None))  # type: ignore[arg-type]


def _transient(value: Any) -> bool:
    return isinstance(value, DBAPIError) and getattr(value.orig, "sqlstate", None) in _TRANSIENT


async def _discard(conn: AsyncConnection) -> None:
    """Drop a connection that failed: never back into the pool as it is."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


def _settle_future(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
