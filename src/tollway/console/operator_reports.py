"""The operator's reading pages: usage and revenue across accounts (core/accounts/reports.py, charts by
model and by day plus a paged table), upstreams and their health, the catalog and its prices, and the
admin audit log (core/accounts/audit.py, paged by cursor)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.base.clock import utcnow
from tollway.console.charts import bar_chart
from tollway.console.html import e, field, guarded, page, pager, select, table
from tollway.console.operator import operator
from tollway.core.accounts import audit
from tollway.core.accounts.reports import MAX_DAYS, upstream_health, usage_across, utc_day
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
ROWS = 50
WINDOWS = (("15", "15 minutes"), ("60", "1 hour"), ("360", "6 hours"), ("1440", "24 hours"))


def _page_no(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@router.get("/console/operator/usage", summary="Console: usage and revenue across accounts")
@guarded
async def usage_page(request: Request) -> Response:
    who = await operator(request)
    q = request.query_params
    last = utc_day(q.get("to") or None, "to", utcnow().date())
    first = utc_day(q.get("from") or None, "from", last - timedelta(days=29))
    if first > last or (last - first).days >= MAX_DAYS:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`from` must be on or before `to`, at most {MAX_DAYS} days apart."
        )
    account = (q.get("account_id") or "").strip()[:40] or None
    engine = request.app.state.services.engine
    rows = await usage_across(engine, first, last, ("account", "model", "day"), account)
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    by_day: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        by_model[r["model"]] += Decimal(r["revenue_usd"])
        by_day[str(r["day"])] += Decimal(r["revenue_usd"])
    total = sum(by_model.values(), Decimal(0))
    filters = (
        '<form method="get" action="/console/operator/usage" class="filters">'
        + field("from", "From (UTC day)", kind="date", value=first.isoformat())
        + field("to", "To (UTC day)", kind="date", value=last.isoformat())
        + field("account_id", "Account id (optional)", value=account or "")
        + '<p><button type="submit">Show</button></p></form>'
    )
    models = sorted(by_model.items(), key=lambda kv: -kv[1])
    days = sorted(by_day.items())[-15:]
    page_no = _page_no(request)
    shown = rows[(page_no - 1) * ROWS : page_no * ROWS]
    listing = table(
        ("Day", "Account", "Model", "Requests", "Tokens in/out", "Revenue (USD)"),
        (
            (
                r["day"],
                r["account_id"],
                r["model"],
                r["requests"],
                f"{r['prompt_tokens']}/{r['completion_tokens']}",
                r["revenue_usd"],
            )
            for r in shown
        ),
        f"{len(rows)} rows by day, account and model",
    )
    query = urlencode({k: v for k, v in q.items() if k != "page" and v})
    body = (
        filters + f'<p>Revenue {e(first)} to {e(last)}: <strong id="revenue">${e(f"{total:f}")}</strong> '
        "(what accounts were charged, markup included).</p>"
        + bar_chart("Revenue by model (USD)", models, chart_id="revenue-by-model")
        + bar_chart("Revenue by day, last 15 days shown (USD)", days, chart_id="revenue-by-day")
        + listing
        + pager("/console/operator/usage", page_no, (len(rows) + ROWS - 1) // ROWS, query)
    )
    return page("Usage and revenue", body, who)


@router.get("/console/operator/upstreams", summary="Console: upstreams and their health")
@guarded
async def upstreams_page(request: Request) -> Response:
    who = await operator(request)
    chosen = request.query_params.get("window", "60")
    window = int(chosen) if chosen in dict(WINDOWS) else 60
    services = request.app.state.services
    health = await upstream_health(services.engine, services.pipeline.router, window)
    rows = []
    for u in health["data"]:
        mine = u["this_replica"]
        cooling = "; ".join(f"{c['model']} ({c['seconds_left']}s left)" for c in mine["cooldowns"])
        failed = ", ".join(f"{s}: {n}" for s, n in sorted(mine["failed_attempts"].items()))
        rows.append(
            (
                u["provider"],
                u["requests"],
                u["errors"],
                "—" if u["p50_ms"] is None else f"{u['p50_ms']} ms",
                "—" if u["p99_ms"] is None else f"{u['p99_ms']} ms",
                cooling or "none",
                failed or "none",
            )
        )
    picker = (
        '<form method="get" action="/console/operator/upstreams" class="filters">'
        + select("window", "Window", WINDOWS, str(window))
        + '<p><button type="submit">Show</button></p></form>'
    )
    body = (
        picker
        + "<p>Requests, errors (5xx) and latency: every replica's calls in the window, from the usage rows. "
        "Cooldowns and failed attempts (retries included, by upstream status): this replica only, since it "
        "started; other replicas keep their own (see each one's /metrics).</p>"
        + table(
            ("Upstream", "Requests", "Errors", "p50", "p99", "Cooldowns (this replica)", "Failed attempts"),
            rows,
            f"Upstreams, last {window} minutes",
        )
    )
    return page("Upstreams", body, who)


@router.get("/console/operator/catalog", summary="Console: the catalog and its prices")
@guarded
async def catalog_page(request: Request) -> Response:
    who = await operator(request)
    catalog = request.app.state.services.catalog
    rows = []
    for m in sorted(catalog.models.values(), key=lambda m: (m.type, m.id)):
        p, cfg = m.token_prices, m.config
        other = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("per image", cfg.pricing.per_image),
                ("per 1M chars", cfg.pricing.per_million_chars),
                ("per second", cfg.pricing.per_second),
            )
            if value is not None
        )
        rows.append(
            (
                m.id,
                m.type,
                cfg.tier,
                ", ".join(f"{r.provider}:{r.model}" for r in cfg.routes),
                nano_to_usd(p.input) if p else "—",
                nano_to_usd(p.output) if p else "—",
                other or "—",
                str(m.markup),
            )
        )
    body = (
        "<p>Prices are what accounts pay, markup included: token prices in USD per 1M tokens. "
        "The catalog is the operator's catalog file; edit it and restart (or reload) to change it.</p>"
        + table(
            ("Model", "Type", "Tier", "Routes", "Input", "Output", "Other prices", "Markup"),
            rows,
            f"{len(rows)} models",
        )
    )
    return page("Catalog", body, who)


@router.get("/console/operator/audit", summary="Console: the admin audit log")
@guarded
async def audit_page(request: Request) -> Response:
    who = await operator(request)
    q = request.query_params
    before = q.get("before") or ""
    if before and (not before.isdigit() or len(before) > 18):
        raise TollwayError(ErrorCode.VALIDATION, "`before` must be a page link's value.", param="before")
    account = (q.get("account_id") or "").strip()[:40] or None
    entries, cursor = await audit.entries(
        request.app.state.services.engine,
        account_id=account,
        before=int(before) if before else None,
        limit=ROWS,
    )
    rows = (
        (
            x["created_at"][:19].replace("T", " "),
            x["actor"],
            x["action"],
            x["account_id"] or "",
            x["target"] or "",
            json.dumps(x["details"], sort_keys=True) if x["details"] else "",
            x["client_ip"] or "",
        )
        for x in entries
    )
    filters = (
        '<form method="get" action="/console/operator/audit" class="filters">'
        + field("account_id", "Account id (optional)", value=account or "")
        + '<p><button type="submit">Filter</button></p></form>'
    )
    base = {"account_id": account} if account else {}
    links = []
    if before:
        links.append(f'<a href="/console/operator/audit?{e(urlencode(base))}">Newest</a>')
    if cursor is not None:
        older = urlencode({**base, "before": cursor})
        links.append(f'<a href="/console/operator/audit?{e(older)}" rel="next">Older entries</a>')
    listing = table(
        ("When (UTC)", "Who", "Action", "Account", "Target", "Details", "From"), rows, "Admin actions"
    )
    nav = f'<nav class="pager" aria-label="Pages">{" ".join(links)}</nav>'
    return page("Audit log", filters + listing + nav, who)
