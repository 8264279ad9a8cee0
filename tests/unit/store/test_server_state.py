"""server_state values written once at start-up (store/server_state.py): processes racing on a new
database agree on one value, and none of them fails on the unique key."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.contract.servers import postgres_database
from tests.unit.conftest import KEY_PEPPER
from tollway.core.access.keys import OPERATOR_HASH, Keys
from tollway.settings import Settings
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade
from tollway.store.server_state import write_once
from tollway.store.tables import server_state


async def _count(db_url: str, name: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(server_state).where(server_state.c.name == name)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_racing_writers_agree_on_the_first_value(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(4)]  # one per "process": separate connections
    try:
        for _ in range(5):
            name = f"test-{uuid.uuid4().hex[:12]}"
            mine = [f"value-{i}" for i in range(len(engines))]
            stored = await asyncio.gather(
                *(write_once(e, name, v) for e, v in zip(engines, mine, strict=True))
            )
            assert len(set(stored)) == 1 and stored[0] in mine, stored
            assert await _count(db_url, name) == 1
            assert await write_once(engines[0], name, "later") == stored[0]  # a value once written stays
    finally:
        for engine in engines:
            await engine.dispose()


def _new_database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp}/new.db"
    return Settings(database_url=postgres_database()).async_database_url


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_create_one_operator_key(backend: str, tmp_path: Path) -> None:
    url = _new_database(backend, tmp_path)
    upgrade(url)

    async def race() -> list[str | None]:
        engines = [create_engine(url) for _ in range(4)]
        try:
            keys = [Keys(e, pepper=KEY_PEPPER, prefix="tw_", cache_seconds=5) for e in engines]
            created = await asyncio.gather(*(k.ensure_operator_key() for k in keys))
            shown = [key for key in created if key is not None]
            assert len(shown) == 1, created
            for k in keys:  # every process knows the one key that was shown
                assert (await k.authenticate(shown[0])).is_operator
            return created
        finally:
            for engine in engines:
                await engine.dispose()

    asyncio.run(race())
    assert asyncio.run(_count(url, OPERATOR_HASH)) == 1
