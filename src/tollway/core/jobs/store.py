"""The `jobs` table: create (with the hold, one transaction), read by owner, claim with a lease.

Claiming: PostgreSQL selects due rows `FOR UPDATE SKIP LOCKED`, so N runners never wait on each
other; every dialect then takes a row with a compare-and-set UPDATE on its lease (`lease_until`
NULL or past), so a row has one runner at a time even on SQLite. Every later write is fenced by
`lease_owner`: a runner that lost its lease (it stalled past it) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.store.tables import jobs

ACTIVE = ("queued", "processing", "unknown")
TERMINAL = ("completed", "failed")


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    account_id: str
    key_id: str | None
    key_label: str | None
    kind: str
    model: str
    provider: str | None
    upstream_model: str | None
    upstream_id: str | None
    status: str
    progress: int
    params: dict[str, Any]
    quote_nano: int
    cost_nano: int | None
    units: int
    media_id: str | None
    content_type: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    next_run_at: datetime
    poll_deadline: datetime | None
    eta_seconds: int | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> JobRow:
        values: dict[str, Any] = dict(row._mapping)
        values = {name: values[name] for name in cls.__slots__}
        values["params"] = dict(values["params"] or {})
        for name in _TIMES:
            if values[name] is not None:
                values[name] = as_utc(values[name])
        return cls(**values)


_TIMES = ("next_run_at", "poll_deadline", "created_at", "finished_at")


def insert_job(values: Mapping[str, Any]) -> Any:
    """The INSERT for a new job (run inside the ledger's reservation transaction)."""

    def run(conn: Connection) -> None:
        now = utcnow()
        conn.execute(
            insert(jobs).values(
                {
                    "status": "queued",
                    "progress": 0,
                    "units": 0,
                    "attempts": 0,
                    "next_run_at": now,
                    "created_at": now,
                    "updated_at": now,
                    **values,
                }
            )
        )

    return run


class JobStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    async def get(self, job_id: str, account_id: str | None = None) -> JobRow | None:
        query = select(jobs).where(jobs.c.id == job_id)
        if account_id is not None:
            query = query.where(jobs.c.account_id == account_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return JobRow.of(row) if row is not None else None

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[JobRow]:
        """Up to `limit` due jobs, leased to `owner` for `lease_seconds`."""
        if limit <= 0:
            return []
        now = utcnow()
        due = and_(
            jobs.c.status.in_(ACTIVE),
            jobs.c.next_run_at <= now,
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
        )
        lease = {
            "lease_owner": owner,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "updated_at": now,
        }
        claimed: list[JobRow] = []
        async with self.engine.begin() as conn:
            query = select(jobs.c.id).where(due).order_by(jobs.c.next_run_at).limit(limit)
            if self.postgres:
                query = query.with_for_update(skip_locked=True)
            ids = (await conn.execute(query)).scalars().all()
            for job_id in ids:
                row = (
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job_id, due)
                        .values(attempts=jobs.c.attempts + 1, **lease)
                        .returning(*jobs.c)
                    )
                ).first()
                if row is not None:
                    claimed.append(JobRow.of(row))
        return claimed

    async def renew(self, job_id: str, owner: str, lease_seconds: float, progress: int | None = None) -> bool:
        values: dict[str, Any] = {"lease_until": utcnow() + timedelta(seconds=lease_seconds)}
        if progress is not None:
            values["progress"] = progress
        return await self.update(job_id, owner, **values)

    async def update(self, job_id: str, owner: str, **values: Any) -> bool:
        """Write `values` if `owner` still holds the lease; False if it does not."""
        values.setdefault("updated_at", utcnow())
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.lease_owner == owner).values(**values)
            )
        return bool(result.rowcount == 1)

    async def release(self, job_id: str, owner: str, next_run_at: datetime, **values: Any) -> bool:
        """Give the lease back and schedule the next step."""
        return await self.update(
            job_id, owner, lease_owner=None, lease_until=None, next_run_at=next_run_at, **values
        )

    async def finish(self, job_id: str, owner: str, status: str, **values: Any) -> bool:
        now = utcnow()
        return await self.update(
            job_id,
            owner,
            status=status,
            lease_owner=None,
            lease_until=None,
            finished_at=now,
            next_run_at=now,
            **values,
        )

    async def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))).all()
        return {str(status): int(count) for status, count in rows}

    async def unknown_ids(self) -> list[str]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(jobs.c.id).where(jobs.c.status == "unknown"))).scalars())

    async def make_due(self, job_ids: list[str]) -> None:
        """Reconciliation now: unknown jobs become due at once."""
        if not job_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(update(jobs).where(jobs.c.id.in_(job_ids)).values(next_run_at=utcnow()))
