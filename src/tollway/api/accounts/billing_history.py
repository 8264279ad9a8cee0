"""Venice's billing reads beside api/accounts/billing.py: `GET billing/usage-history` (a signed cursor
walk in ascending time; JSON, or CSV with `Accept: text/csv`) and `GET billing/usage-analytics`
(spend by day, model and key). An admin key sees the whole account, an inference key its own usage.
The queries are core/accounts/usage_history.py's and usage_analytics.py's."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.accounts.billing import _int, _wants_csv, account_caller
from tollway.api.http import JSON
from tollway.api.spec import JSON_OBJECT, KEYED, documented
from tollway.core.accounts import usage_analytics, usage_history
from tollway.core.caller import Caller
from tollway.core.money.usage_reports import CSV_COLUMNS, csv_record, parse_instant
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
FILTERS = ("currency", "startTimestamp", "endTimestamp", "pageSize")


def _scope(who: Caller) -> tuple[str, str | None]:
    assert who.account_id is not None
    return who.account_id, None if who.scope == "admin" else who.key_id


@router.get(
    "/billing/usage-history",
    summary="Usage entries as a cursor walk in ascending time; JSON or CSV (Accept: text/csv)",
    **documented(
        errors=KEYED,
        ok={"application/json": {"schema": JSON_OBJECT}, "text/csv": {"schema": {"type": "string"}}},
    ),
)
async def usage_history_route(
    request: Request,
    currency: str | None = Query(None, description="USD | DIEM | BUNDLED_CREDITS (Tollway bills USD only)"),
    cursor: str | None = Query(None, description="nextCursor of the previous page; no filters with it"),
    startTimestamp: str | None = Query(None, description="inclusive, ISO 8601 UTC"),
    endTimestamp: str | None = Query(None, description="exclusive, ISO 8601 UTC; default: now"),
    pageSize: str | None = Query(None, description="10..1000, default 1000"),
    who: Caller = Depends(account_caller),
) -> Response:
    services = request.app.state.services
    account_id, key_id = _scope(who)
    pepper = services.settings.pepper()
    if cursor is not None:
        sent = [name for name in FILTERS if request.query_params.get(name) is not None]
        if sent:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"A cursor carries its walk's filters: send it alone (without {', '.join(sent)}).",
                param=sent[0],
            )
        if len(cursor) > 512:
            raise TollwayError(ErrorCode.VALIDATION, "`cursor` is at most 512 characters.", param="cursor")
        walk = usage_history.decode(cursor, pepper, account_id, key_id)
    else:
        if currency is not None and currency not in usage_history.CURRENCIES:
            raise TollwayError(
                ErrorCode.VALIDATION, "`currency` must be USD, DIEM or BUNDLED_CREDITS.", param="currency"
            )
        start = parse_instant(startTimestamp, "startTimestamp")
        end = parse_instant(endTimestamp, "endTimestamp")
        if start is not None and end is not None and end <= start:
            raise TollwayError(
                ErrorCode.VALIDATION,
                "`endTimestamp` must be later than `startTimestamp`.",
                param="endTimestamp",
            )
        walk = await usage_history.first_walk(
            services.engine,
            account_id,
            key_id,
            currency=currency or "USD",
            start=start,
            end=end,
            page_size=_int(pageSize, "pageSize", 1000, *usage_history.PAGE_SIZES),
        )
    entries, following = await usage_history.page(services.engine, walk)
    next_cursor = usage_history.encode(following, pepper) if following else None
    if _wants_csv(request.headers.get("accept", "")):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_record(entry) for entry in entries)
        headers = {"content-disposition": "attachment; filename=usage_history.csv"}
        if next_cursor:
            headers["x-next-cursor"] = next_cursor
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    return JSON({"data": entries, "nextCursor": next_cursor})


@router.get(
    "/billing/usage-analytics",
    summary="Spend by day, model and key over a window (lookback=7d, or startDate and endDate)",
    **documented(errors=KEYED),
)
async def usage_analytics_route(
    request: Request,
    lookback: str | None = Query(None, description="Nd, 1d to 90d; default 7d"),
    startDate: str | None = Query(None, description="YYYY-MM-DD, with endDate"),
    endDate: str | None = Query(None, description="YYYY-MM-DD, with startDate"),
    who: Caller = Depends(account_caller),
) -> Response:
    services = request.app.state.services
    first, last, echoed = usage_analytics.window(lookback, startDate, endDate)
    account_id, key_id = _scope(who)
    return JSON(
        await usage_analytics.analytics(
            services.engine, services.catalog, account_id, key_id, first, last, echoed
        )
    )
