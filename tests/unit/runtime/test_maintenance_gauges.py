"""The sweeper refreshes the gauges operators alert on: open reservations and the async job queue
depth by status, read from the database (so every replica reports the same, all-replica figure)."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.runtime import maintenance
from tollway.store.tables import jobs
from tollway.telemetry import metrics


def _gauge(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_sweep_refreshes_reservation_and_job_queue_gauges(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    account = (await accounts_service.create(f"unit-{secrets.token_hex(3)}", credit_nano=10_000)).id
    await ledger.reserve(account, f"req_{uuid.uuid4().hex}", 3_000)
    now = utcnow()
    statuses = ["queued", "queued", "processing", "unknown", "completed", "failed"]
    ids = [f"job_{uuid.uuid4().hex[:12]}" for _ in statuses]
    async with engine.begin() as conn:
        await conn.execute(delete(jobs))  # this test's database is its own: count only its jobs
        await conn.execute(
            insert(jobs),
            [
                {
                    "id": job_id,
                    "account_id": account,
                    "kind": "video",
                    "model": "m",
                    "status": status,
                    "quote_nano": 1,
                    "next_run_at": now + timedelta(hours=1),
                    "created_at": now - timedelta(minutes=10 if status == "queued" else 0),
                    "updated_at": now,
                }
                for job_id, status in zip(ids, statuses, strict=True)
            ],
        )
    await maintenance.sweep_once(ledger, engine)
    assert _gauge("tollway_jobs", status="queued") == 2
    assert _gauge("tollway_jobs", status="processing") == 1
    assert _gauge("tollway_jobs", status="unknown") == 1  # finished jobs are not queue depth
    assert 590 <= _gauge("tollway_jobs_oldest_age_seconds", status="queued") < 900  # a queue stuck 10 min
    assert _gauge("tollway_jobs_oldest_age_seconds", status="processing") < 300
    assert _gauge("tollway_reservations_outstanding") >= 1
    assert _gauge("tollway_reserved_nano_usd") >= 3_000
