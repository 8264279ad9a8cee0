"""The operator's views across accounts (issue 24): usage and revenue grouped by account, model and day,
and upstream health. Thin: core/accounts/reports.py says what each number is and which are per replica."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.auth import operator_caller
from tollway.api.http import JSON
from tollway.api.spec import KEYED, documented
from tollway.base.clock import utcnow
from tollway.core.accounts.reports import GROUPS, MAX_DAYS, upstream_health, usage_across, utc_day
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])


@router.get(
    "/usage",
    summary="Usage and revenue across accounts, grouped by account, model and/or UTC day",
    **documented(errors=KEYED),
)
async def usage(
    request: Request,
    start: str | None = Query(None, description="first UTC day, YYYY-MM-DD (default: 30 days ago)"),
    end: str | None = Query(None, description="last UTC day, YYYY-MM-DD, inclusive (default: today)"),
    group_by: str | None = Query(
        None, description="comma-separated: account, model, day (default: all three)"
    ),
    account_id: str | None = Query(None, max_length=40, description="only this account"),
) -> Response:
    today = utcnow().date()
    last = utc_day(end, "end", today)
    first = utc_day(start, "start", last - timedelta(days=29))
    if first > last or (last - first).days >= MAX_DAYS:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`start` must be on or before `end`, at most {MAX_DAYS} days apart.",
            param="start",
        )
    groups = [g.strip() for g in (group_by or ",".join(GROUPS)).split(",") if g.strip()]
    if not groups or any(g not in GROUPS for g in groups):
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`group_by` is a comma-separated list of account, model, day.",
            param="group_by",
        )
    rows = await usage_across(request.app.state.services.engine, first, last, groups, account_id)
    return JSON(
        {
            "object": "list",
            "start": first.isoformat(),
            "end": last.isoformat(),
            "group_by": groups,
            "data": rows,
        }
    )


@router.get(
    "/upstreams",
    summary="Each upstream's health: requests, errors, p50/p99 latency, and this replica's cooldowns",
    **documented(errors=KEYED),
)
async def upstreams(
    request: Request,
    window_minutes: str | None = Query(
        None, description="how far back the usage rows go, 1..1440 (default 60)"
    ),
) -> Response:
    given = window_minutes
    window = 60 if given is None else (int(given) if given.isdigit() and len(given) <= 4 else 0)
    if not 1 <= window <= 1440:
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`window_minutes` must be a whole number from 1 to 1440.",
            param="window_minutes",
        )
    services = request.app.state.services
    return JSON(await upstream_health(services.engine, services.pipeline.router, window))
