"""The SQLite Transactor (store/db.py): a body alone runs in its own transaction, bodies queued together
share one COMMIT with a SAVEPOINT each; either way a failing body changes nothing and its caller gets
its exception, and the others' changes land."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from tollway.store.db import Transactor, create_engine


@pytest.fixture
async def transactor(tmp_path: Path) -> AsyncIterator[Transactor]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    tx = Transactor(engine)
    await tx.run(lambda conn: conn.execute(text("create table t (v integer primary key)")))
    yield tx
    tx.close()
    await engine.dispose()


def _insert(value: int, fail: bool = False):  # type: ignore[no-untyped-def]
    def body(conn: Connection) -> int:
        conn.execute(text("insert into t (v) values (:v)"), {"v": value})
        if fail:
            raise ValueError(f"body {value} fails after its insert")
        return value

    return body


async def _values(tx: Transactor) -> list[int]:
    return await tx.run(lambda conn: [row[0] for row in conn.execute(text("select v from t order by v"))])


async def test_a_body_alone_commits_or_rolls_back(transactor: Transactor) -> None:
    assert await transactor.run(_insert(1)) == 1
    with pytest.raises(ValueError, match="body 2"):
        await transactor.run(_insert(2, fail=True))
    assert await _values(transactor) == [1]


async def test_bodies_queued_together_fail_alone(transactor: Transactor) -> None:
    outcomes = await asyncio.gather(
        *(transactor.run(_insert(v, fail=v % 3 == 0)) for v in range(1, 31)), return_exceptions=True
    )
    failed = [v for v, o in zip(range(1, 31), outcomes, strict=True) if isinstance(o, ValueError)]
    assert failed == [v for v in range(1, 31) if v % 3 == 0]
    assert await _values(transactor) == [v for v in range(1, 31) if v % 3 != 0]
