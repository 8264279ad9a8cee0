"""Alembic environment: runs migrations on the async engine Tollway itself uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from tollway.store import event_tables, funding_tables  # noqa: F401  (their tables join `metadata`)
from tollway.store.db import create_engine
from tollway.store.tables import metadata

config = context.config


# Processes started together on one database (replicas, `tollway serve --workers N`) all migrate it.
# So every pending migration runs in one transaction that first takes a database-wide lock: the
# first process migrates, the others wait, then read the version it committed and have nothing to
# do. (Otherwise two of them create the same table and one fails.) PostgreSQL: a transaction-level
# advisory lock. SQLite: the BEGIN IMMEDIATE every transaction starts with (store/db.py) is the
# database's write lock already.
MIGRATION_LOCK = 0x746F6C6C  # "toll": the advisory lock's id, Tollway's alone in its database


def _run(connection: Connection) -> None:
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        # Inside our transaction, Alembic opens none of its own: all or nothing, under the lock.
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        )
        context.run_migrations()


async def _main() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `tollway migrate` against a database")
asyncio.run(_main())
