"""The Transactor (store/transactor.py), on SQLite and PostgreSQL: a body alone runs in its own
transaction, bodies queued together share one COMMIT with a SAVEPOINT each; either way a failing body
changes nothing and its caller alone gets its exception, and the others' changes land.

On PostgreSQL also: a connection that died (in the pool, or mid-batch) costs a second run of the batch
on a new one, never half a batch; a deadlock victim runs again in the next batch; a caller cancelled
before its body ran is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy
from sqlalchemy import Connection, insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.prepared import Prepared
from tollway.store.transactor import Transactor


@contextlib.asynccontextmanager
async def _table(engine: AsyncEngine) -> AsyncIterator[str]:
    name = f"tx_{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        await conn.execute(text(f"create table {name} (v integer primary key, n integer not null default 0)"))
    try:
        yield name
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"drop table {name}"))


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[str]:
    async with _table(engine) as name:
        yield name


@pytest.fixture
async def transactor(engine: AsyncEngine, table: str) -> AsyncIterator[Transactor]:
    tx = Transactor(engine)
    try:
        yield tx
    finally:
        await tx.aclose()


@pytest.fixture
async def pg_table(pg_engine: AsyncEngine) -> AsyncIterator[str]:
    async with _table(pg_engine) as name:
        yield name


@functools.cache
def _insert_into(table: str) -> Prepared:
    return Prepared(insert(sqlalchemy.table(table, sqlalchemy.column("v"))))


def _insert(table: str, value: int, fail: bool = False) -> Callable[[Connection], int]:
    def body(conn: Connection) -> int:
        _insert_into(table).first(conn, {"v": value})  # on the driver's cursor, as the ledger's bodies
        if fail:
            raise ValueError(f"body {value} fails after its insert")
        return value

    return body


def _pid(conn: Connection) -> int:
    return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


async def _values(engine: AsyncEngine, table: str) -> list[int]:
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(text(f"select v from {table} order by v"))]


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    """Kill a backend, as a restart or a network cut would, and wait until it is gone."""
    async with engine.connect() as conn:
        assert (await conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid})).scalar_one()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            gone = (
                await conn.execute(
                    text("select count(*) = 0 from pg_stat_activity where pid = :p"), {"p": pid}
                )
            ).scalar_one()
            if gone:
                return
            # pg_stat_activity is a snapshot taken once per transaction: without ending it,
            # a first look that still saw the backend would see it for ever.
            await conn.rollback()
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} still there")


async def test_a_body_alone_commits_or_rolls_back(
    engine: AsyncEngine, table: str, transactor: Transactor
) -> None:
    assert await transactor.run(_insert(table, 1)) == 1
    with pytest.raises(ValueError, match="body 2"):
        await transactor.run(_insert(table, 2, fail=True))
    with pytest.raises(IntegrityError):
        await transactor.run(_insert(table, 1))
    assert await _values(engine, table) == [1]
    assert transactor.batches == 3


async def test_bodies_queued_together_share_a_transaction_and_fail_alone(
    engine: AsyncEngine, table: str, transactor: Transactor
) -> None:
    values = [*range(1, 31), 2, 4, 8]  # the last three repeat a value: their insert is refused
    outcomes = await asyncio.gather(
        *(transactor.run(_insert(table, v, fail=v % 3 == 0)) for v in values), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [
        ValueError if v % 3 == 0 else IntegrityError if i >= 30 else int for i, v in enumerate(values)
    ]
    assert await _values(engine, table) == [v for v in range(1, 31) if v % 3 != 0]
    # PostgreSQL's drainer starts once every caller has queued: one batch. SQLite's writer thread
    # may start on the first before the others are queued.
    assert transactor.batches == 1 if engine.dialect.name == "postgresql" else transactor.batches < 10


def _insert_many(table: str) -> Callable[[Connection, list[int]], list[int]]:
    def many(conn: Connection, values: list[int]) -> list[int]:
        _insert_into(table).many(conn, [{"v": v} for v in values])
        return values

    return many


async def test_bodies_with_a_set_based_form_run_as_one_group_or_each_alone_when_it_fails(
    engine: AsyncEngine, table: str, transactor: Transactor
) -> None:
    many = _insert_many(table)  # one function for the whole test: a group is bodies sharing it
    together = [transactor.run(_insert(table, v), many=many, item=v) for v in range(1, 21)]
    alone = [transactor.run(_insert(table, v)) for v in (21, 22)]
    assert await asyncio.gather(*together, *alone) == list(range(1, 23))
    if engine.dialect.name == "postgresql":  # one batch: the group of 20 ran as one
        assert (transactor.batches, transactor.grouped) == (1, 20)
    assert await _values(engine, table) == list(range(1, 23))
    # A group whose set-based run fails (here a value already in the table) is run body by body:
    # only the repeated one fails, and the others land.
    grouped = transactor.grouped
    values = [23, 24, 5, 25]
    outcomes = await asyncio.gather(
        *(transactor.run(_insert(table, v), many=many, item=v) for v in values), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [int, int, IntegrityError, int]
    assert transactor.grouped == grouped
    assert await _values(engine, table) == list(range(1, 26))


async def test_a_caller_cancelled_before_its_body_ran_is_dropped(
    pg_engine: AsyncEngine, pg_table: str
) -> None:
    transactor = Transactor(pg_engine)
    try:
        first = asyncio.create_task(transactor.run(_insert(pg_table, 1)))
        second = asyncio.create_task(transactor.run(_insert(pg_table, 2)))
        await asyncio.sleep(0)  # both queued; the drainer has not run yet
        second.cancel()
        assert await first == 1
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await transactor.run(_insert(pg_table, 3)) == 3
    finally:
        await transactor.aclose()
    assert await _values(pg_engine, pg_table) == [1, 3]


@pytest.mark.parametrize("bodies", [1, 20])
async def test_a_connection_that_died_in_the_pool_is_replaced(
    pg_engine: AsyncEngine, pg_table: str, bodies: int
) -> None:
    """No pre-ping: the first batch on a dead connection fails, and runs again on a new one."""
    transactor = Transactor(pg_engine)
    try:
        dead = await transactor.run(_pid)
        await _terminate(pg_engine, dead)
        outcomes = await asyncio.gather(*(transactor.run(_insert(pg_table, v)) for v in range(1, bodies + 1)))
        assert outcomes == list(range(1, bodies + 1))
        assert transactor.retries == 1
        assert await transactor.run(_pid) != dead
    finally:
        await transactor.aclose()
    assert await _values(pg_engine, pg_table) == list(range(1, bodies + 1))


async def test_a_connection_killed_mid_batch_runs_the_whole_batch_again(
    pg_engine: AsyncEngine, pg_table: str
) -> None:
    transactor = Transactor(pg_engine)
    pids: list[int] = []
    sleeping = asyncio.Event()

    def slow(conn: Connection) -> int:
        pids.append(_pid(conn))
        sleeping.set()  # bodies run on the event loop's thread (run_sync)
        conn.execute(text("select pg_sleep(0.5)"))
        return 0

    async def kill_the_first_run() -> None:
        await sleeping.wait()
        await _terminate(pg_engine, pids[0])

    bodies = [
        *(_insert(pg_table, v) for v in range(1, 6)),
        slow,
        *(_insert(pg_table, v) for v in range(6, 11)),
    ]
    try:
        outcomes = await asyncio.gather(*(transactor.run(body) for body in bodies), kill_the_first_run())
    finally:
        await transactor.aclose()
    # 1..5 ran before the kill; had any of them committed, its second run would raise IntegrityError.
    assert outcomes == [1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10, None]
    assert len(pids) == 2 and pids[0] != pids[1]
    assert transactor.retries == 1
    assert await _values(pg_engine, pg_table) == list(range(1, 11))


async def test_a_deadlock_victim_runs_again_in_the_next_batch(pg_engine: AsyncEngine, pg_table: str) -> None:
    """Two replicas' batches lock two rows in opposite orders: PostgreSQL aborts one body (after
    deadlock_timeout), which is rolled back to its SAVEPOINT and runs again after its batch's COMMIT."""
    async with pg_engine.begin() as conn:
        await conn.execute(text(f"insert into {pg_table} (v) values (1), (2)"))

    def bump(value: int, pause: float = 0.0) -> Callable[[Connection], int]:
        def body(conn: Connection) -> int:
            conn.execute(text(f"update {pg_table} set n = n + 1 where v = :v"), {"v": value})
            if pause:
                conn.execute(text("select pg_sleep(:s)"), {"s": pause})
            return value

        return body

    one, two = Transactor(pg_engine), Transactor(pg_engine)
    try:
        outcomes = await asyncio.gather(
            one.run(bump(1, pause=0.3)),
            one.run(bump(2)),
            two.run(bump(2, pause=0.3)),
            two.run(bump(1)),
            return_exceptions=True,
        )
    finally:
        await one.aclose()
        await two.aclose()
    assert outcomes == [1, 2, 2, 1]
    assert one.batches + two.batches == 3  # one batch each, and the victim's second run
    async with pg_engine.connect() as conn:
        assert (await conn.execute(text(f"select v, n from {pg_table} order by v"))).all() == [(1, 2), (2, 2)]
