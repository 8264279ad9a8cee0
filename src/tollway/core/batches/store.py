"""The `batches` and `batch_lines` tables: a batch's OpenAI view, and one row per line that ended.

A batch is created with its `jobs` row (kind "batch", the same id) in one transaction, so the job
runner claims it like any job (core/jobs/store.py: leases, resumed by another runner after a crash).
An answered line's row is written by its settlement's transaction (`record_ok`); its primary key
(batch, line) is what meters a line exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.core.jobs.store import insert_job
from tollway.store.tables import batch_lines, batches, jobs

ENDED = ("completed", "failed", "cancelled", "expired")
CANCELLABLE = ("validating", "in_progress")
_TIMES = (
    "created_at",
    "expires_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "cancelling_at",
    "cancelled_at",
    "expired_at",
)


class LineTaken(Exception):
    """Another runner already recorded this line: this settlement must not charge it again."""


@dataclass(frozen=True, slots=True)
class LineRow:
    line: int
    attempt: int
    ok: bool
    status_code: int
    request_id: str
    error_code: str | None
    error_message: str | None


class BatchStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, values: dict[str, Any], job: dict[str, Any]) -> None:
        """The batch and its job row, both or neither."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(batches).values(**values))
            await conn.run_sync(insert_job(job))

    async def get(
        self, batch_id: str, account_id: str | None = None, surface: str | None = None
    ) -> dict[str, Any] | None:
        query = select(batches).where(batches.c.id == batch_id)
        if account_id is not None:
            query = query.where(batches.c.account_id == account_id)
        if surface is not None:
            query = query.where(batches.c.surface == surface)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _batch(row) if row is not None else None

    async def list(
        self, account_id: str, after: str | None, limit: int, surface: str = "openai"
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; `after` is the last id of the previous page."""
        query = select(batches).where(batches.c.account_id == account_id, batches.c.surface == surface)
        async with self.engine.connect() as conn:
            if after is not None:
                cursor = (
                    await conn.execute(
                        select(batches.c.created_at).where(
                            batches.c.id == after, batches.c.account_id == account_id
                        )
                    )
                ).first()
                if cursor is not None:
                    at = cursor[0]
                    query = query.where(
                        (batches.c.created_at < at) | and_(batches.c.created_at == at, batches.c.id < after)
                    )
            order = (batches.c.created_at.desc(), batches.c.id.desc())
            rows = (await conn.execute(query.order_by(*order).limit(limit + 1))).all()
        return [_batch(row) for row in rows[:limit]], len(rows) > limit

    async def counts(self, batch_id: str) -> tuple[int, int]:
        """(answered, failed) lines so far."""
        query = select(batch_lines.c.ok, func.count()).where(batch_lines.c.batch_id == batch_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.group_by(batch_lines.c.ok))).all()
        found = {bool(ok): int(count) for ok, count in rows}
        return found.get(True, 0), found.get(False, 0)

    async def lines(self, batch_id: str) -> dict[int, LineRow]:
        query = select(batch_lines).where(batch_lines.c.batch_id == batch_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.line: LineRow(*(getattr(row, n) for n in LineRow.__slots__)) for row in rows}

    @staticmethod
    def record_ok(batch_id: str, line: int, attempt: int, request_id: str) -> Any:
        """The answered line's row, run in its settlement's transaction (Ledger.settle `also`)."""

        def run(conn: Connection) -> None:
            where = (batch_lines.c.batch_id == batch_id, batch_lines.c.line == line)
            if conn.execute(select(batch_lines.c.attempt).where(*where)).first() is not None:
                raise LineTaken(f"{batch_id} line {line}")
            conn.execute(
                insert(batch_lines).values(
                    batch_id=batch_id,
                    line=line,
                    attempt=attempt,
                    ok=True,
                    status_code=200,
                    request_id=request_id,
                )
            )

        return run

    async def record_failure(
        self, batch_id: str, line: int, attempt: int, request_id: str, status: int, code: str, message: str
    ) -> None:
        """A failed line (nothing charged); a line another runner recorded first stays as it is."""
        values = {
            "batch_id": batch_id,
            "line": line,
            "attempt": attempt,
            "ok": False,
            "status_code": status,
            "request_id": request_id,
            "error_code": code[:40],
            "error_message": message[:300],
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(batch_lines).values(**values))
        except IntegrityError:
            return

    async def status(self, batch_id: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(batches.c.status).where(batches.c.id == batch_id))).scalar()

    async def move(self, batch_id: str, from_: tuple[str, ...], **values: Any) -> bool:
        """Set `values` if the batch's status is one of `from_` (a cancel racing the runner)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(batches).where(batches.c.id == batch_id, batches.c.status.in_(from_)).values(**values)
            )
        return bool(result.rowcount == 1)

    async def end(
        self,
        batch_id: str,
        owner: str,
        values: dict[str, Any],
        file_rows: Sequence[dict[str, Any]] = (),
        insert_file: Any = None,
    ) -> bool:
        """The batch's last word, in one transaction: its job ends (if `owner` still holds its lease:
        a runner that lost it changes nothing and gets False), its output files' rows, its status."""

        def run(conn: Connection) -> bool:
            now = utcnow()
            ended = conn.execute(
                update(jobs)
                .where(jobs.c.id == batch_id, jobs.c.lease_owner == owner)
                .values(status="completed" if values.get("status") != "failed" else "failed",
                        lease_owner=None, lease_until=None, finished_at=now, next_run_at=now, updated_at=now,
                        params={"_runner": owner})
            )  # fmt: skip
            if ended.rowcount != 1:
                return False
            for row in file_rows:
                insert_file(conn, row)
            conn.execute(update(batches).where(batches.c.id == batch_id).values(**values))
            return True

        async with self.engine.begin() as conn:
            return bool(await conn.run_sync(run))


def _batch(row: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(row._mapping)
    for name in _TIMES:
        if values.get(name) is not None:
            values[name] = as_utc(values[name])
    return values


def epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None
