"""Low-balance alerts on SQLite and PostgreSQL (core/events/alerts.py): one outbox row per crossing,
however many publishers look at once; re-armed above the threshold; the secret derived, never stored."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.access.accounts import Accounts
from tollway.core.events.alerts import Alerts
from tollway.core.events.webhooks import Poster
from tollway.store.event_tables import balance_alerts, event_outbox
from tollway.store.tables import accounts

DOLLAR = 1_000_000_000


async def set_balance(engine: AsyncEngine, account_id: str, nano: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(balance_nano=nano))


async def alert_rows(engine: AsyncEngine, account_id: str) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(event_outbox.c.id)
            .where(event_outbox.c.account_id == account_id)
            .order_by(event_outbox.c.id)
        )
        return [r[0] for r in found]


async def test_one_alert_per_crossing_across_racing_publishers(engine: AsyncEngine, accts: Accounts) -> None:
    account = (await accts.create("alerts", credit_nano=2 * DOLLAR)).id
    poster = Poster(allow_hosts="127.0.0.1")
    service = Alerts(engine, b"pepper", poster)
    others = [Alerts(engine, b"pepper", poster) for _ in range(3)]
    try:
        alert = await service.put(account, DOLLAR, "http://127.0.0.1:9/hook")
        assert alert.signing_secret == service.secret(account, await _nonce(engine, account))
        assert (
            await service.put(account, DOLLAR, "http://127.0.0.1:9/other")
        ).signing_secret == alert.signing_secret
        await asyncio.gather(*(a.check() for a in others))
        assert await alert_rows(engine, account) == []  # above the threshold
        await set_balance(engine, account, DOLLAR - 1)
        fired = await asyncio.gather(*(a.check() for a in others), service.check())
        assert sum(fired) == 1
        assert await alert_rows(engine, account) == [f"balance_low_{account}_1"]
        await set_balance(engine, account, DOLLAR // 2)
        assert await service.check() == 0  # still below: no second alert
        await set_balance(engine, account, DOLLAR)  # at the threshold again: re-armed
        await service.check()
        assert (await service.get(account)).armed is True
        await set_balance(engine, account, 0)
        assert sum(await asyncio.gather(*(a.check() for a in others))) == 1
        assert len(await alert_rows(engine, account)) == 2
        async with engine.connect() as conn:
            stored = (
                await conn.execute(select(balance_alerts).where(balance_alerts.c.account_id == account))
            ).one()
        assert alert.signing_secret not in str(tuple(stored))
    finally:
        await poster.aclose()


async def _nonce(engine: AsyncEngine, account: str) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    select(balance_alerts.c.secret_nonce).where(balance_alerts.c.account_id == account)
                )
            ).scalar_one()
        )
