"""Alembic, driven from code: `tollway migrate`, and `tollway serve` on an empty database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(async_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # versions/ holds the core schema, versions/funding/ the payment rails' tables: one chain across both
    cfg.set_main_option("recursive_version_locations", "true")
    cfg.set_main_option("sqlalchemy.url", async_url)
    return cfg


def upgrade(async_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(async_url), revision)


def downgrade(async_url: str, revision: str) -> None:
    command.downgrade(alembic_config(async_url), revision)


async def upgrade_async(async_url: str) -> None:
    # env.py runs its own event loop, so it must not run on ours.
    await asyncio.to_thread(upgrade, async_url)
