"""Usage and billing for an account's own keys: NightVeil /usage, Venice /billing/*, seed-001 /account/*.

Thin routes: the queries live in tollway.core.money.usage_reports. Served under /v1 and /api/v1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.auth import caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import JSON_OBJECT, KEYED, documented
from tollway.core.caller import Caller
from tollway.core.inference.schemas import validate
from tollway.core.money.prices import NANO_PER_USD, TokenUsage, nano_to_usd, token_cost
from tollway.core.money.usage_reports import (
    CSV_COLUMNS,
    UsageReports,
    check_range,
    credit_nano,
    credits_needed,
    credits_of,
    csv_record,
    parse_instant,
)
from tollway.dialects import task_api
from tollway.dialects.task_api import TaskApiError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
CURRENCIES = ("USD", "VCU", "DIEM")
MAX_PAGE = (
    1_000_000  # × 500 per page: an OFFSET far inside 64 bits  # Venice's enum; Tollway bills in USD only
)
USAGE_RETIRED = (
    "GET /api/v1/billing/usage was retired on 2026-09-16: use GET /api/v1/billing/usage-history, the same "
    "entries with cursor pagination. Replace `page` and `limit` with `pageSize` and each answer's "
    "`nextCursor` (sent as `cursor`), and `startDate`/`endDate` with `startTimestamp`/`endTimestamp`."
)
USAGE_SUNSET = {
    "deprecation": "@1783555200",
    "sunset": "Wed, 16 Sep 2026 00:00:00 GMT",
    "link": '</api/v1/billing/usage-history>; rel="successor-version"',
}


async def account_caller(request: Request) -> Caller:
    """Any key of an account (admin or inference); the operator key has no balance or usage."""
    who = await caller(request)
    if who.is_operator or who.account_id is None:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "The operator key has no account; call this route with an account's key."
        )
    return who


async def account_admin_caller(request: Request) -> Caller:
    who = await account_caller(request)
    if who.scope != "admin":
        raise TollwayError(ErrorCode.UNAUTHORIZED, "This route needs an admin-scope key of the account.")
    return who


def _reports(request: Request) -> UsageReports:
    return UsageReports(request.app.state.services.engine)


def _account_id(who: Caller) -> str:
    assert who.account_id is not None
    return who.account_id


def _int(value: str | None, param: str, default: int, low: int, high: int) -> int:
    """A query integer within [low, high]: every one ends in SQL (OFFSET, LIMIT), which holds 64 bits."""
    if value is None or value == "":
        return default
    try:
        number = int(value) if len(value) <= 20 else low - 1  # int() of 5,000 digits is slow
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`{param}` must be an integer between {low} and {high}.", param=param
        )
    return number


def _wants_csv(accept: str) -> bool:
    """The first of application/json and text/csv named in Accept wins; JSON by default."""
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return False
        if media in ("text/csv", "text/*"):
            return True
    return False


# -- NightVeil reseller API -------------------------------------------------------------------


@router.get(
    "/usage",
    summary="Usage grouped by key label, model and UTC day (admin-scope key)",
    **documented(errors=KEYED),
)
async def usage_report(
    request: Request,
    start: str | None = Query(None, description="ISO date or date-time, UTC; default 30 days before end"),
    end: str | None = Query(None, description="ISO date (whole day) or date-time, UTC; default now"),
    who: Caller = Depends(account_admin_caller),
) -> Response:
    since = parse_instant(start, "start")
    until = parse_instant(end, "end", end=True)
    check_range(since, until, "end")
    return JSON(await _reports(request).grouped(_account_id(who), since, until))


# -- Venice billing API ------------------------------------------------------------------------


@router.get(
    "/billing/usage",
    summary="Billing usage entries, paginated; JSON or CSV (Accept: text/csv). Under /api/v1: 410 (usage-history)",
    **documented(
        errors=(*KEYED, 410),
        ok={"application/json": {"schema": JSON_OBJECT}, "text/csv": {"schema": {"type": "string"}}},
    ),
)
async def billing_usage(
    request: Request,
    currency: str | None = Query(None, description="USD | VCU | DIEM (Tollway bills in USD only)"),
    startDate: str | None = Query(None, description="ISO 8601 date-time"),
    endDate: str | None = Query(None, description="ISO 8601 date-time"),
    sortOrder: str | None = Query(None, description="asc | desc (by createdAt), default desc"),
    page: str | None = Query(None, description="1-based page, 1..1000000, default 1"),
    limit: str | None = Query(None, description="items per page, 1..500, default 200"),
    who: Caller = Depends(account_caller),
) -> Response:
    if request.url.path.startswith("/api/"):  # Venice sunset it: /v1 (NightVeil's) keeps serving it
        raise TollwayError(ErrorCode.ENDPOINT_RETIRED, USAGE_RETIRED, headers=USAGE_SUNSET)
    if currency is not None and currency not in CURRENCIES:
        raise TollwayError(
            ErrorCode.VALIDATION, "`currency` must be one of USD, VCU, DIEM.", param="currency"
        )
    order = sortOrder or "desc"
    if order not in ("asc", "desc"):
        raise TollwayError(ErrorCode.VALIDATION, "`sortOrder` must be asc or desc.", param="sortOrder")
    page_number = _int(page, "page", 1, 1, MAX_PAGE)
    page_size = _int(limit, "limit", 200, 1, 500)
    since = parse_instant(startDate, "startDate")
    until = parse_instant(endDate, "endDate", end=True)
    check_range(since, until, "endDate")
    result = await _reports(request).entries(
        _account_id(who),
        start=since,
        end=until,
        descending=order == "desc",
        page=page_number,
        limit=page_size,
        # An admin key sees the whole account; an inference key (a reseller's customer) only itself.
        key_id=None if who.scope == "admin" else who.key_id,
    )
    rows = result.rows if currency in (None, "USD") else []
    total = result.total if currency in (None, "USD") else 0
    total_pages = result.total_pages if total else 0
    headers = {
        "x-pagination-limit": str(page_size),
        "x-pagination-page": str(page_number),
        "x-pagination-total": str(total),
        "x-pagination-total-pages": str(total_pages),
    }
    if _wants_csv(request.headers.get("accept", "")):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_record(row) for row in rows)
        headers["content-disposition"] = "attachment; filename=billing_usage.csv"
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    pagination = {"limit": page_size, "page": page_number, "total": total, "totalPages": total_pages}
    return JSON({"data": rows, "pagination": pagination}, headers=headers)


def venice_balance(available_nano: int) -> dict[str, Any]:
    """Venice's balance (its document's closed shape): USD only, no DIEM staking here. `usd` is a
    number there; the exact decimal string is /v1's `available_usd`."""
    return {
        "canConsume": available_nano > 0,
        "consumptionCurrency": "USD",
        "balances": {"diem": None, "usd": float(Decimal(available_nano) / NANO_PER_USD)},
        "diemEpochAllocation": 0,
    }


@router.get("/billing/balance", summary="The account's balance (USD)", **documented(errors=KEYED))
async def billing_balance(request: Request, who: Caller = Depends(account_caller)) -> Response:
    balance, reserved = await request.app.state.services.ledger.balances(_account_id(who))
    if request.url.path.startswith("/api/"):
        return JSON(venice_balance(balance - reserved))
    available = nano_to_usd(balance - reserved)
    return JSON(
        {
            "object": "balance",
            "currency": "USD",
            "balances": {"USD": available},
            "balance_usd": nano_to_usd(balance),
            "reserved_usd": nano_to_usd(reserved),
            "available_usd": available,
        }
    )


# -- seed-001 account API: {"success": true, "data": ...} / {"success": false, "error": ...} -----


async def _seed001(request: Request, work: Callable[[Caller], Awaitable[dict[str, Any]]]) -> Response:
    try:
        who = await account_caller(request)
        return JSON(task_api.success(await work(who)))
    except TollwayError as err:
        return JSON(task_api.account_error(err), status_code=err.status, headers=err.headers)


class CostRequest(BaseModel):
    """A text or embedding call to preview: tokens in, and at most `max_tokens` out."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "chat", "embedding"] = "text"
    model: str = Field(min_length=1)
    prompt_tokens: int = Field(default=0, ge=0)
    max_tokens: int = Field(default=0, ge=0)


@router.get(
    "/account/credits",
    summary="Balance in credits (seed-001 envelope)",
    **documented(errors=(401, 403, 404), envelope=TaskApiError),
)
async def account_credits(request: Request) -> Response:
    services = request.app.state.services

    async def work(who: Caller) -> dict[str, Any]:
        account = await services.accounts.get(_account_id(who))
        per_credit = credit_nano(request.app.state.services.settings.credit_usd)
        credited = await _reports(request).credited_nano(account.id)
        available = account.balance_nano - account.reserved_nano
        return {
            "credits": credits_of(available, per_credit),
            "total_credits": credits_of(credited, per_credit),
            "subscription": {"plan": account.plan, "end_date": None},
            "is_vip": False,
            "credit_usd": nano_to_usd(per_credit),
            "balance_usd": nano_to_usd(available),
        }

    return await _seed001(request, work)


@router.post(
    "/account/calculate-cost",
    summary="Preview the credit cost of a call (seed-001 envelope)",
    **documented(body=CostRequest, errors=(400, 401, 403, 410, 415), envelope=TaskApiError),
)
async def calculate_cost(request: Request) -> Response:
    catalog = request.app.state.services.catalog

    async def work(who: Caller) -> dict[str, Any]:
        body = validate(CostRequest, await read_json(request))
        model = catalog.resolve(body.model)
        if model.token_prices is None:
            raise TollwayError(
                ErrorCode.VALIDATION, f"Model {model.id!r} is not priced per token.", param="model"
            )
        completion = body.max_tokens if body.type != "embedding" else 0
        cost = token_cost(model.token_prices, TokenUsage(body.prompt_tokens, completion))
        per_credit = credit_nano(request.app.state.services.settings.credit_usd)
        return {
            "type": body.type,
            "model": model.id,
            "credits_needed": credits_needed(cost, per_credit),
            "cost_usd": nano_to_usd(cost),
            "credit_usd": nano_to_usd(per_credit),
        }

    return await _seed001(request, work)
