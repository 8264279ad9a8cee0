"""Periodic work every replica runs: renew the leases of its own live calls (holds and in-flight slots),
release expired reservations (a crashed replica's holds), refresh
the reservation and job-queue gauges, delete usage rows past the retention (their totals stay in usage_daily),
delete stored responses past their TTL, export the ledger invariant check (core/money/invariants.py,
run by one replica at a time), and re-read the characters the operator manages through the admin API
(core/catalog/character_store.py: another replica's change is seen within one sweep interval).

Every replica runs it; each step is safe to run concurrently (a hold is released by exactly one
DELETE ... RETURNING; a retention batch deletes whatever is still there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.catalog import character_store
from tollway.core.catalog.catalog import Catalog
from tollway.core.inference.responses.stored import ResponseStore
from tollway.core.jobs.store import ACTIVE
from tollway.core.limits.limiter import Limiter
from tollway.core.money import invariants
from tollway.core.money.ledger import Ledger
from tollway.settings import Settings
from tollway.store.tables import jobs, reservations, usage
from tollway.telemetry import metrics

log = logging.getLogger("tollway.maintenance")
RETENTION_BATCH = 5000


async def sweep_once(ledger: Ledger, engine: AsyncEngine) -> int:
    released = await ledger.sweep()
    if released:
        metrics.SWEPT.inc(released)
        log.warning("released %d expired reservations", released)
    async with engine.connect() as conn:
        count, held = (
            await conn.execute(select(func.count(), func.coalesce(func.sum(reservations.c.amount_nano), 0)))
        ).one()
        rows = (
            await conn.execute(
                select(jobs.c.status, func.count(), func.min(jobs.c.created_at))
                .where(jobs.c.status.in_(ACTIVE))
                .group_by(jobs.c.status)
            )
        ).all()
    metrics.RESERVATIONS.set(int(count))
    metrics.RESERVED.set(int(held))
    depth = {status: (int(n), oldest) for status, n, oldest in rows}
    now = utcnow()
    for status in ACTIVE:
        n, oldest = depth.get(status, (0, None))
        metrics.JOBS.labels(status).set(n)
        metrics.JOBS_OLDEST.labels(status).set(_age(now, oldest))
    return released


def _age(now: datetime, oldest: datetime | None) -> float:
    """Seconds since `oldest` (SQLite hands back naive UTC datetimes), 0 when there is none."""
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


async def renew_forever(ledger: Ledger, limiter: Limiter, settings: Settings) -> None:
    """Renew this process's leases three times a lease, so one missed renewal loses nothing."""
    every = settings.hold_lease_seconds / 3
    while True:
        await asyncio.sleep(every)
        for what, renew in (("holds", ledger.renew), ("in-flight slots", limiter.renew)):
            try:
                await renew()
            except Exception:
                log.exception("renewing the leases of this process's %s failed", what)


async def sweep_forever(ledger: Ledger, engine: AsyncEngine, interval: float) -> None:
    while True:
        try:
            await sweep_once(ledger, engine)
        except Exception:
            log.exception("reservation sweep failed")
        await asyncio.sleep(interval)


async def delete_old_usage(engine: AsyncEngine, days: int, batch: int = RETENTION_BATCH) -> int:
    """Delete usage rows older than `days`, `batch` rows per transaction (short locks). Returns the count."""
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    total = 0
    while True:
        ids = select(usage.c.id).where(usage.c.created_at < cutoff).limit(batch).scalar_subquery()
        async with engine.begin() as conn:
            deleted = (await conn.execute(delete(usage).where(usage.c.id.in_(ids)))).rowcount
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let requests in between batches


async def retention_forever(engine: AsyncEngine, days: int, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            deleted = await delete_old_usage(engine, days)
            if deleted:
                log.info("deleted %d usage rows older than %d days", deleted, days)
        except Exception:
            log.exception("usage retention failed")


async def stored_responses_forever(store: ResponseStore, interval: float) -> None:
    """Delete stored responses past their TTL (they are never read after it, deleted or not)."""
    while True:
        try:
            deleted = await store.sweep()
            if deleted:
                log.info("deleted %d stored responses past their TTL", deleted)
        except Exception:
            log.exception("stored responses sweep failed")
        await asyncio.sleep(interval)


async def characters_forever(engine: AsyncEngine, catalog: Callable[[], Catalog], interval: float) -> None:
    """The stored characters onto the current catalog (`catalog()`: a reload swaps it), every interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            await character_store.refresh(engine, catalog())
        except Exception:
            log.exception("reading the stored characters failed")


async def check_ledger_once(engine: AsyncEngine, interval: float) -> invariants.LastCheck:
    """Run the ledger invariant check if it is due (and this replica wins it); export the latest result."""
    last = await invariants.check_due(engine, interval)
    metrics.LEDGER_VIOLATIONS.set(max(last.violations, 0))
    metrics.LEDGER_CHECKED.set(last.checked_at)
    if last.violations > 0:
        log.error(
            "ledger invariant check: %d account(s) disagree with their ledger or holds", last.violations
        )
    return last


async def ledger_check_forever(engine: AsyncEngine, interval: float, every: float) -> None:
    """Every `every` seconds: the check when due, the latest result into the gauges of this process."""
    while True:
        try:
            await check_ledger_once(engine, interval)
        except Exception:
            log.exception("ledger invariant check failed")
        await asyncio.sleep(every)
