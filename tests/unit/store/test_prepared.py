"""Prepared statements (store/prepared.py) store and return exactly what Connection.execute would:
same stored datetimes, scalar column defaults applied, RETURNING rows by column name, and database
errors raised as sqlalchemy.exc classes (the ledger's double-settle guard catches IntegrityError)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.prepared import Prepared
from tollway.store.tables import accounts, usage
from tollway.store.transactor import Transactor

NOW = datetime(2026, 11, 22, 5, 6, 7, 890123, tzinfo=UTC)
INSERT_USAGE = Prepared(insert(usage))
HOLD = Prepared(
    update(accounts)
    .where(accounts.c.id == bindparam("p_account"))
    .where(accounts.c.balance_nano - accounts.c.reserved_nano >= bindparam("p_amount"))
    .values(reserved_nano=accounts.c.reserved_nano + bindparam("p_amount"))
    .returning(accounts.c.balance_nano, accounts.c.reserved_nano)
)


def _usage_row(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "account_id": "acct",
        "model": "m",
        "endpoint": "chat",
        "usage_source": "provider",
        "outcome": "completed",
        "status_code": 200,
        "latency_ms": 3,
        "created_at": NOW,
        "prompt_tokens": 5,
    }


async def test_rows_read_back_the_same_as_rows_written_by_core(engine: AsyncEngine) -> None:
    tx = Transactor(engine)
    try:
        await tx.run(lambda conn: INSERT_USAGE.first(conn, _usage_row("prepared")))
        await tx.run(lambda conn: conn.execute(insert(usage), [_usage_row("core")]))
        rows = await tx.run(
            lambda conn: conn.execute(
                select(usage.c.request_id, usage.c.created_at, usage.c.units, usage.c.cost_nano)
                .where(usage.c.request_id.in_(["prepared", "core"]))
                .order_by(usage.c.request_id)
            ).all()
        )
    finally:
        await tx.aclose()
    core, prepared = rows
    assert prepared.created_at == core.created_at  # same stored form, read back the same way
    assert prepared.created_at.replace(tzinfo=UTC) == NOW
    assert (prepared.units, prepared.cost_nano) == (core.units, core.cost_nano) == (0, 0)  # defaults


async def test_returning_rows_and_conditional_updates(engine: AsyncEngine) -> None:
    tx = Transactor(engine)
    account = f"acct_{uuid.uuid4().hex[:8]}"
    try:
        await tx.run(
            lambda conn: conn.execute(
                insert(accounts).values(
                    id=account,
                    name="p",
                    balance_nano=100,
                    reserved_nano=0,
                    age_verified=False,
                    created_at=NOW,
                )
            )
        )
        first = await tx.run(lambda conn: HOLD.first(conn, {"p_account": account, "p_amount": 60}))
        second = await tx.run(lambda conn: HOLD.first(conn, {"p_account": account, "p_amount": 60}))
    finally:
        await tx.aclose()
    assert (first.balance_nano, first.reserved_nano) == (100, 60)
    assert second is None  # 40 left: the condition refused it, nothing changed


async def test_constraint_violations_raise_sqlalchemy_integrity_error(engine: AsyncEngine) -> None:
    tx = Transactor(engine)
    try:
        await tx.run(lambda conn: INSERT_USAGE.first(conn, _usage_row("twice")))
        with pytest.raises(IntegrityError):
            await tx.run(lambda conn: INSERT_USAGE.first(conn, _usage_row("twice")))
        count = await tx.run(
            lambda conn: len(conn.execute(select(usage.c.id).where(usage.c.request_id == "twice")).all())
        )
    finally:
        await tx.aclose()
    assert count == 1


async def test_a_schema_change_does_not_break_a_statement_for_good(pg_url: str) -> None:
    """PostgreSQL: after DDL changes what a cached statement returns (the ledger's INSERT … RETURNING
    id when `id` becomes BIGINT, say: a rolling upgrade), asyncpg raises InvalidCachedStatementError
    once and SQLAlchemy re-prepares its statements; a Prepared statement must recover the same way,
    not fail on that connection until the process restarts."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, text

    from tollway.store.db import create_engine

    engine = create_engine(pg_url, pool_size=1, max_overflow=0)  # one connection: its cache is the one hit
    table = Table(
        f"prepared_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("id", String(10), primary_key=True),
        Column("v", Integer),
    )
    bump = Prepared(
        update(table)
        .where(table.c.id == bindparam("p_id"))
        .values(v=table.c.v + bindparam("p_by"))
        .returning(table.c.v)
    )
    tx = Transactor(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.create)
            await conn.execute(insert(table).values(id="a", v=1))
        assert (await tx.run(lambda conn: bump.first(conn, {"p_id": "a", "p_by": 1}))).v == 2
        async with engine.begin() as conn:
            await conn.execute(text(f"alter table {table.name} alter column v type bigint"))
        outcomes: list[object] = []
        for _ in range(3):
            try:
                outcomes.append((await tx.run(lambda conn: bump.first(conn, {"p_id": "a", "p_by": 1}))).v)
            except Exception as exc:  # the first run after the DDL may fail, as with Connection.execute
                outcomes.append(type(exc).__name__)
        assert outcomes[1:] == [3, 4] or outcomes == [3, 4, 5], outcomes
    finally:
        await tx.aclose()
        async with engine.begin() as conn:
            await conn.run_sync(table.drop)
        await engine.dispose()
