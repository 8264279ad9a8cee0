"""server_state: values written once, at start-up, by whichever process comes first.

Processes started together on a new database (replicas, `tollway serve --workers N`) all try to write
them. A read-then-insert would let two of them read "none" and one die on the unique key; so the
insert is `INSERT … ON CONFLICT DO NOTHING` and everyone reads back the value that won.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.tables import server_state


async def write_once(engine: AsyncEngine, name: str, value: str) -> str:
    """Store `value` under `name` unless a value is there already; return the stored value.

    A random `value` comes back only to the one call that stored it."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(server_state).values(name=name, value=value).on_conflict_do_nothing()
    async with engine.begin() as conn:
        # PostgreSQL: a racing insert not yet committed makes this one wait for its outcome; the
        # SELECT (READ COMMITTED: a fresh snapshot) then sees the winner. SQLite: BEGIN IMMEDIATE
        # (store/db.py) already serialises the whole transaction.
        await conn.execute(statement)
        stored = (
            await conn.execute(select(server_state.c.value).where(server_state.c.name == name))
        ).scalar_one()
    return str(stored)
