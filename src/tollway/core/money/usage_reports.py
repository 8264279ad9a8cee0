"""Usage and billing reports read from the `usage` table: no HTTP here.

One usage row per call (metadata only). Queries are SQLAlchemy Core with portable SQL; the UTC day
of a row is computed in Python, because SQLite and PostgreSQL share no date function that agrees
on time zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.core.money.prices import NANO_PER_USD, ceil_div, nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import ledger, usage, usage_daily

DEFAULT_DAYS = 30
PER_MILLION = Decimal(1_000_000)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime.combine(date(9998, 12, 31), time.max, tzinfo=UTC)


def credit_nano(credit_usd: Decimal) -> int:
    """What one seed-001 credit is worth, in nano-USD (`Settings.credit_usd`, TOLLWAY_CREDIT_USD)."""
    return usd_to_nano(str(credit_usd))


def parse_instant(value: str | None, param: str, *, end: bool = False) -> datetime | None:
    """An ISO date or datetime, as aware UTC, from 1970 to 9998 (a report's day arithmetic stays
    within the years a datetime has). A bare date used as an end means the end of that day."""
    if value is None or value == "":
        return None
    text = value.strip()
    moment: datetime | None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.max if end else time(), tzinfo=UTC)
        else:
            moment = as_utc(datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")))
    except OverflowError:  # a year-1 or year-9999 instant off UTC: out of range too
        moment = None
    except ValueError:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`{param}` must be an ISO 8601 date or date-time (e.g. 2024-01-31 or 2024-01-31T00:00:00Z).",
            param=param,
        ) from None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`{param}` must lie between 1970-01-01 and 9998-12-31.", param=param
        )
    return moment


def check_range(start: datetime | None, end: datetime | None, param: str) -> None:
    if start is not None and end is not None and end < start:
        raise TollwayError(ErrorCode.VALIDATION, f"`{param}` is before the start of the range.", param=param)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _usd_number(nano: int) -> float:
    """A JSON number for specs that want numbers (Venice); strings stay exact elsewhere."""
    return float(Decimal(nano) / NANO_PER_USD)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    limit: int

    @property
    def total_pages(self) -> int:
        return ceil_div(self.total, self.limit) if self.total else 0


class UsageReports:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def _filters(
        account_id: str, start: datetime | None, end: datetime | None, key_id: str | None = None
    ) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = [usage.c.account_id == account_id]
        if start is not None:
            clauses.append(usage.c.created_at >= start)
        if end is not None:
            clauses.append(usage.c.created_at <= end)
        if key_id is not None:
            clauses.append(usage.c.key_id == key_id)
        return and_(*clauses)

    async def grouped(self, account_id: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
        """NightVeil /v1/usage: rows grouped by key label, model and UTC day; cost summed exactly.

        Whole UTC days inside the range are read from the usage_daily rollup (store/rollup.py); only the
        partial days at the edges are read row by row, so a report stays fast at millions of rows.
        """
        now = utcnow()
        end = end or now
        start = start or end - timedelta(days=DEFAULT_DAYS)
        groups: dict[tuple[str, str, str, str], list[int]] = {}
        first_full = start.date() if start == _midnight(start.date()) else start.date() + timedelta(days=1)
        end_covers_day = end >= now or end + timedelta(microseconds=1) >= _midnight(end.date() + timedelta(1))
        last_full = end.date() if end_covers_day else end.date() - timedelta(days=1)
        async with self._engine.connect() as conn:
            if first_full > last_full:
                await self._add_rows(conn, groups, account_id, start, end, end_inclusive=True)
            else:
                if start < _midnight(first_full):
                    await self._add_rows(conn, groups, account_id, start, _midnight(first_full))
                await self._add_rollup(conn, groups, account_id, first_full, last_full)
                after = _midnight(last_full + timedelta(days=1))
                if after <= end:
                    await self._add_rows(conn, groups, account_id, after, end, end_inclusive=True)
        data = [
            {
                "day": day,
                "key_label": label or None,
                "key_id": key_id or None,
                "model": model,
                "requests": requests,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost_usd": nano_to_usd(cost),
            }
            for (day, label, key_id, model), (requests, prompt, completion, cost) in sorted(groups.items())
        ]
        total = sum(bucket[3] for bucket in groups.values())
        return {
            "object": "list",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "data": data,
            "total_cost_usd": nano_to_usd(total),
        }

    async def _add_rows(
        self,
        conn: AsyncConnection,
        groups: dict[tuple[str, str, str, str], list[int]],
        account_id: str,
        start: datetime,
        end: datetime,
        *,
        end_inclusive: bool = False,
    ) -> None:
        upper = usage.c.created_at <= end if end_inclusive else usage.c.created_at < end
        query = select(
            usage.c.key_id,
            usage.c.key_label,
            usage.c.model,
            usage.c.created_at,
            usage.c.prompt_tokens,
            usage.c.completion_tokens,
            usage.c.cost_nano,
        ).where(usage.c.account_id == account_id, usage.c.created_at >= start, upper)
        result = await conn.stream(query)
        async for row in result:
            day = as_utc(row.created_at).date().isoformat()
            bucket = groups.setdefault((day, row.key_label or "", row.key_id or "", row.model), [0, 0, 0, 0])
            bucket[0] += 1
            bucket[1] += row.prompt_tokens
            bucket[2] += row.completion_tokens
            bucket[3] += row.cost_nano

    @staticmethod
    async def _add_rollup(
        conn: AsyncConnection,
        groups: dict[tuple[str, str, str, str], list[int]],
        account_id: str,
        first: date,
        last: date,
    ) -> None:
        c = usage_daily.c
        rows = await conn.execute(
            select(
                c.day,
                c.key_label,
                c.key_id,
                c.model,
                c.requests,
                c.prompt_tokens,
                c.completion_tokens,
                c.cost_nano,
            ).where(c.account_id == account_id, c.day >= first.isoformat(), c.day <= last.isoformat())
        )
        for row in rows:
            bucket = groups.setdefault((row.day, row.key_label, row.key_id, row.model), [0, 0, 0, 0])
            bucket[0] += int(row.requests)
            bucket[1] += int(row.prompt_tokens)
            bucket[2] += int(row.completion_tokens)
            bucket[3] += int(row.cost_nano)

    async def entries(
        self,
        account_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        descending: bool,
        page: int,
        limit: int,
        key_id: str | None = None,
    ) -> Page:
        """Venice /billing/usage: one entry per usage row, newest first unless asked otherwise."""
        where = self._filters(account_id, start, end, key_id)
        order = (
            (usage.c.created_at.desc(), usage.c.id.desc()) if descending else (usage.c.created_at, usage.c.id)
        )
        async with self._engine.connect() as conn:
            total = int(
                (await conn.execute(select(func.count()).select_from(usage).where(where))).scalar_one()
            )
            rows = (
                await conn.execute(
                    select(usage).where(where).order_by(*order).offset((page - 1) * limit).limit(limit)
                )
            ).all()
        return Page([venice_entry(row) for row in rows], total, page, limit)

    async def credited_nano(self, account_id: str) -> int:
        """Everything ever credited to the account (credits, refunds), in nano-USD."""
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.coalesce(func.sum(ledger.c.amount_nano), 0)).where(
                        ledger.c.account_id == account_id, ledger.c.kind.in_(("credit", "refund"))
                    )
                )
            ).scalar_one()
        return int(value)


def venice_entry(row: Any) -> dict[str, Any]:
    """A usage row as a Venice billing entry. Token calls are priced per million tokens ("mtoken")."""
    tokens = int(row.prompt_tokens) + int(row.completion_tokens)
    if row.endpoint in ("chat", "embeddings") or tokens:
        kind = "llm" if row.endpoint == "chat" else row.endpoint
        sku = f"{row.model}-{kind}-mtoken"
        units = Decimal(tokens) / PER_MILLION
    else:
        sku = f"{row.model}-{row.endpoint}-unit"
        units = Decimal(int(row.units))
    price = Decimal(int(row.cost_nano)) / NANO_PER_USD / units if units else Decimal(0)
    return {
        "amount": -_usd_number(int(row.cost_nano)),
        "currency": "USD",
        "inferenceDetails": {
            "completionTokens": row.completion_tokens,
            "inferenceExecutionTime": row.latency_ms,
            "promptTokens": row.prompt_tokens,
            "requestId": row.request_id,
        },
        "notes": "API Inference",
        "pricePerUnitUsd": float(round(price, 9)),
        "sku": sku,
        "timestamp": as_utc(row.created_at).isoformat().replace("+00:00", "Z"),
        "units": float(units),
    }


CSV_COLUMNS = (
    "timestamp",
    "sku",
    "units",
    "pricePerUnitUsd",
    "amount",
    "currency",
    "notes",
    "requestId",
    "promptTokens",
    "completionTokens",
    "inferenceExecutionTime",
)


def csv_record(entry: dict[str, Any]) -> list[Any]:
    details = entry["inferenceDetails"] or {}
    return [entry[c] if c in entry else details.get(c) for c in CSV_COLUMNS]


def credits_of(nano: int, per_credit: int) -> int:
    """Whole credits a balance is worth (rounded down: a credit is never promised twice)."""
    return max(nano, 0) // per_credit


def credits_needed(nano: int, per_credit: int) -> int:
    """Credits a cost needs (rounded up: a preview never understates a charge)."""
    return ceil_div(max(nano, 0), per_credit)
