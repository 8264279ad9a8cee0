"""What the console's pages read: a reseller's reads are scoped to the session's account id, never the URL's;
the operator's pages pass the account they show. Billing statements as CSV (the API's columns)."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import Request
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from tollway.base.clock import utcnow
from tollway.core.accounts.statement import COLUMNS, statement
from tollway.core.money.prices import NANO_PER_USD
from tollway.core.money.usage_reports import check_range, parse_instant
from tollway.store.tables import budget_leases, jobs, ledger, usage

PAGE_SIZE = 50


def usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


@dataclass(frozen=True)
class Spend:
    by_model: list[tuple[str, Decimal]]
    by_key: list[tuple[str, Decimal]]
    total: Decimal
    requests: int
    errors: int


async def spend(engine: AsyncEngine, account_id: str, days: int) -> Spend:
    """Spend in the last `days` days (1 = today, since UTC midnight), by model and by key."""
    now = utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    where = (usage.c.account_id == account_id, usage.c.created_at >= start)
    async with engine.connect() as conn:
        models = (
            await conn.execute(
                select(usage.c.model, func.sum(usage.c.cost_nano))
                .where(*where)
                .group_by(usage.c.model)
                .order_by(func.sum(usage.c.cost_nano).desc())
            )
        ).all()
        keys = (
            await conn.execute(
                select(usage.c.key_id, usage.c.key_label, func.sum(usage.c.cost_nano))
                .where(*where)
                .group_by(usage.c.key_id, usage.c.key_label)
                .order_by(func.sum(usage.c.cost_nano).desc())
            )
        ).all()
        counts = (
            await conn.execute(
                select(
                    func.count(), func.coalesce(func.sum(case((usage.c.status_code >= 400, 1), else_=0)), 0)
                ).where(*where)
            )
        ).one()
    by_model = [(str(m), usd(int(c or 0))) for m, c in models]
    by_key = [(str(label or key_id or "no key"), usd(int(c or 0))) for key_id, label, c in keys]
    return Spend(by_model, by_key, sum((v for _, v in by_model), Decimal(0)), int(counts[0]), int(counts[1]))


@dataclass(frozen=True)
class UsageFilter:
    key_id: str | None = None
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def clauses(self, account_id: str) -> list[Any]:
        out: list[Any] = [usage.c.account_id == account_id]
        if self.key_id:
            out.append(usage.c.key_id == self.key_id)
        if self.model:
            out.append(usage.c.model == self.model)
        if self.start:
            out.append(usage.c.created_at >= self.start)
        if self.end:
            out.append(usage.c.created_at < self.end)
        return out


async def usage_rows(
    engine: AsyncEngine, account_id: str, filt: UsageFilter, page: int, limit: int = PAGE_SIZE
) -> tuple[list[Any], int]:
    """One page of the account's usage rows, newest first, and how many rows match."""
    where = filt.clauses(account_id)
    async with engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).select_from(usage).where(*where))).scalar_one())
        rows = (
            await conn.execute(
                select(usage)
                .where(*where)
                .order_by(usage.c.created_at.desc(), usage.c.id.desc())
                .offset((page - 1) * limit)
                .limit(limit)
            )
        ).all()
    return list(rows), total


async def account_models(engine: AsyncEngine, account_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(usage.c.model).where(usage.c.account_id == account_id).distinct())
        return sorted(str(r[0]) for r in rows)


async def job_rows(
    engine: AsyncEngine, account_id: str, status: str | None, page: int
) -> tuple[list[Any], int]:
    where: list[Any] = [jobs.c.account_id == account_id]
    if status:
        where.append(jobs.c.status == status)
    async with engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).select_from(jobs).where(*where))).scalar_one())
        rows = (
            await conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.kind,
                    jobs.c.model,
                    jobs.c.status,
                    jobs.c.progress,
                    jobs.c.cost_nano,
                    jobs.c.quote_nano,
                    jobs.c.created_at,
                    jobs.c.error_code,
                )
                .where(*where)
                .order_by(jobs.c.created_at.desc())
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        ).all()
    return list(rows), total


async def queue_depth(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.status, func.count())
            .where(jobs.c.status.in_(("queued", "processing")))
            .group_by(jobs.c.status)
        )
        return {str(s): int(n) for s, n in rows}


# Where money came from or went (issue 25): a funding rail's ledger reference starts with its prefix;
# any other credit, debit or refund is the operator's (an adjustment, a manual credit).
SOURCES = (
    ("stripe:", "card (Stripe)"),
    ("chain:", "USDC deposit"),
    ("code:", "redemption code"),
    ("x402:", "x402"),
)
MONEY_KINDS = ("credit", "adjust", "refund")


def source(reference: str) -> str:
    return next((name for prefix, name in SOURCES if reference.startswith(prefix)), "operator")


async def movements(engine: AsyncEngine, account_id: str, limit: int = PAGE_SIZE) -> list[Any]:
    """The account's latest money movements (credits, debits, refunds; not calls), newest first."""
    lg = ledger.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(lg.created_at, lg.kind, lg.amount_nano, lg.reference)
            .where(lg.account_id == account_id, lg.kind.in_(MONEY_KINDS), lg.amount_nano != 0)
            .order_by(lg.id.desc())
            .limit(limit)
        )
        return list(rows)


def statement_form(action: str) -> str:
    """A GET form for a billing statement as CSV (core/accounts/statement.py's stable columns)."""
    return (
        f'<form method="get" action="{html.escape(action)}" class="filters">'
        '<p><label for="st-from">From (UTC day)</label><input id="st-from" name="from" type="date"></p>'
        '<p><label for="st-to">To (UTC day, inclusive)</label><input id="st-to" name="to" type="date"></p>'
        '<p><button type="submit">Download statement (CSV)</button></p></form>'
        "<p><small>Empty dates: the last 30 days. Calls (input and output priced apart), top-ups, "
        "credits, debits and refunds with their reasons.</small></p>"
    )


async def statement_response(request: Request, account_id: str) -> Response:
    """The account's statement as the API's CSV (same columns and range rules), as a download."""
    services = request.app.state.services
    q = request.query_params
    last = parse_instant(q.get("to"), "to", end=True) or utcnow()
    first = parse_instant(q.get("from"), "from") or last - timedelta(days=30)
    check_range(first, last, "to")
    rows = await statement(services.engine, account_id, first, last, services.catalog.models)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(["" if r[c] is None else r[c] for c in COLUMNS] for r in rows)
    headers = {
        "content-disposition": f"attachment; filename=statement-{account_id}.csv",
        "cache-control": "no-store",
    }
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


async def processes_holding_leases(engine: AsyncEngine) -> int:
    """Processes that hold an unexpired budget lease or job lease now: busy replicas (or job workers)."""
    now = utcnow()
    async with engine.connect() as conn:
        owners = set(
            (
                await conn.execute(
                    select(budget_leases.c.owner).where(budget_leases.c.expires_at > now).distinct()
                )
            ).scalars()
        )
        owners |= set(
            (
                await conn.execute(
                    select(jobs.c.lease_owner)
                    .where(jobs.c.lease_owner.is_not(None), jobs.c.lease_until > now)
                    .distinct()
                )
            ).scalars()
        )
    return len(owners)
