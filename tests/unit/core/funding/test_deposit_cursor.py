"""The deposit watcher's cursor and lease (issue 25) on SQLite and PostgreSQL: one holder at a time, taken
over only once expired, and a holder that lost it cannot move the cursor."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.funding.deposit_cursor import NOBODY, Cursor, DepositCursor


def contract() -> str:
    return "0x" + secrets.token_hex(20)  # a cursor of its own (the PostgreSQL database is shared)


async def test_one_holder_until_its_lease_expires(engine: AsyncEngine) -> None:
    token = contract()
    first, second = DepositCursor(engine, token, 10.0), DepositCursor(engine, token, 10.0)
    assert await first.read() == Cursor(-1, NOBODY, 0.0)
    held = await first.acquire(now=1000.0)
    assert held == Cursor(-1, first.holder, 1010.0)
    assert await second.acquire(now=1005.0) is None  # held
    moved = await first.advance(held, 42, now=1006.0)
    assert moved == Cursor(42, first.holder, 1016.0)
    assert await first.acquire(now=1007.0) == Cursor(42, first.holder, 1017.0)  # its own: renewed
    taken = await second.acquire(now=1020.0)  # expired: taken over, from where the first left it
    assert taken == Cursor(42, second.holder, 1030.0)
    current = await first.read()
    assert await first.advance(Cursor(42, first.holder, 1017.0), 99, now=1021.0) is None  # lost: no move
    assert await first.read() == current
    await second.release(taken)
    assert await first.acquire(now=1022.0) == Cursor(42, first.holder, 1032.0)  # released: free at once


async def test_racing_acquires_one_wins(engine: AsyncEngine) -> None:
    token = contract()
    cursors = [DepositCursor(engine, token, 30.0) for _ in range(6)]
    await cursors[0].read()  # the row exists (its first write is raced by write_once elsewhere)
    won = await asyncio.gather(*(c.acquire(now=500.0) for c in cursors))
    assert sum(w is not None for w in won) == 1
    assert Cursor.parse(Cursor(7, "abc", 1.5).render()) == Cursor(7, "abc", 1.5)
