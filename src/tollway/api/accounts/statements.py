"""Billing statements (issue 24): an account's calls and money movements with stable columns, as JSON or
CSV (`Accept: text/csv` or `?format=csv`). The operator reads any account's; an account's admin-scope key
reads its own. The columns and what each amount means: core/accounts/statement.py, and the README."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tollway.api.accounts.billing import account_admin_caller
from tollway.api.auth import operator_caller
from tollway.api.http import JSON
from tollway.api.spec import BY_ID, JSON_OBJECT, KEYED, documented
from tollway.base.clock import utcnow
from tollway.core.accounts.statement import COLUMNS, statement
from tollway.core.caller import Caller
from tollway.core.money.usage_reports import check_range, parse_instant
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
OK = {"application/json": {"schema": JSON_OBJECT}, "text/csv": {"schema": {"type": "string"}}}
START = "ISO 8601 date or date-time (default: 30 days before `end`)"
END = "ISO 8601 date or date-time, inclusive (default: now)"
FORMAT = "csv or json (default: by Accept, else json)"


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        if fmt not in ("csv", "json"):
            raise TollwayError(ErrorCode.VALIDATION, "`format` must be csv or json.", param="format")
        return fmt == "csv"
    return request.headers.get("accept", "").split(",")[0].split(";")[0].strip().lower() == "text/csv"


async def _statement(
    request: Request, account_id: str, start: str | None, end: str | None, fmt: str | None
) -> Response:
    services = request.app.state.services
    await services.accounts.get(account_id)
    last = parse_instant(end, "end", end=True) or utcnow()
    first = parse_instant(start, "start") or last - timedelta(days=30)
    check_range(first, last, "end")
    as_csv = _wants_csv(request, fmt)
    rows = await statement(services.engine, account_id, first, last, services.catalog.models)
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(["" if r[c] is None else r[c] for c in COLUMNS] for r in rows)
        disposition = {"content-disposition": f"attachment; filename=statement-{account_id}.csv"}
        return Response(out.getvalue(), media_type="text/csv", headers=disposition)
    return JSON(
        {"object": "statement", "account_id": account_id, "start": first.isoformat(), "end": last.isoformat(),
         "columns": list(COLUMNS), "data": rows}
    )  # fmt: skip


@router.get(
    "/admin/accounts/{account_id}/statement",
    summary="An account's billing statement: calls (input and output priced apart), top-ups, adjustments",
    **documented(errors=BY_ID, ok=OK),
)
async def operator_statement(
    request: Request,
    account_id: str,
    start: str | None = Query(None, description=START),
    end: str | None = Query(None, description=END),
    format: str | None = Query(None, description=FORMAT),
    who: Caller = Depends(operator_caller),
) -> Response:
    return await _statement(request, account_id, start, end, format)


@router.get(
    "/billing/statement",
    summary="Your account's billing statement: calls (input and output priced apart), top-ups, adjustments",
    **documented(errors=KEYED, ok=OK),
)
async def own_statement(
    request: Request,
    start: str | None = Query(None, description=START),
    end: str | None = Query(None, description=END),
    format: str | None = Query(None, description=FORMAT),
    who: Caller = Depends(account_admin_caller),
) -> Response:
    assert who.account_id is not None
    return await _statement(request, who.account_id, start, end, format)
