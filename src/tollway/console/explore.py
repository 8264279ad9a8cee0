"""The reseller's usage explorer (filters, pages, CSV), models and prices, jobs, quick start and funding."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.base.clock import as_utc
from tollway.console import queries
from tollway.console.dashboard import reseller
from tollway.console.html import e, field, form, guarded, notice, page, pager, select, table
from tollway.console.sessions import Viewer, check_csrf
from tollway.core.funding.deposits import units_to_nano
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
CSV_COLUMNS = (
    "created_at",
    "request_id",
    "key_id",
    "key_label",
    "model",
    "endpoint",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "units",
    "cost_usd",
)
JOB_STATES = ("queued", "processing", "completed", "failed")


def _day(value: str | None, param: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`{param}` must be a date like 2026-12-05.", param=param
        ) from exc


def _filter(request: Request) -> queries.UsageFilter:
    q = request.query_params
    start, end = _day(q.get("from"), "from"), _day(q.get("to"), "to")
    return queries.UsageFilter(
        key_id=q.get("key") or None,
        model=q.get("model") or None,
        start=datetime.combine(start, time.min, tzinfo=UTC) if start else None,
        end=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None,
    )


def _page_no(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@router.get("/console/usage", summary="Console: usage explorer")
@guarded
async def usage_page(request: Request) -> Response:
    who = await reseller(request)
    services = request.app.state.services
    filt, page_no = _filter(request), _page_no(request)
    rows, total = await queries.usage_rows(services.engine, who.account_id, filt, page_no)
    keys = await services.keys.list(who.account_id)
    models = await queries.account_models(services.engine, who.account_id)
    q = request.query_params
    filters = (
        '<form method="get" action="/console/usage" class="filters">'
        + select(
            "key",
            "Key",
            [("", "all keys")] + [(k["id"], k["label"] or k["id"]) for k in keys],
            q.get("key", ""),
        )
        + select("model", "Model", [("", "all models")] + [(m, m) for m in models], q.get("model", ""))
        + field("from", "From", kind="date", value=q.get("from", ""))
        + field("to", "To", kind="date", value=q.get("to", ""))
        + '<p><button type="submit">Filter</button></p></form>'
    )
    query = urlencode({k: v for k, v in q.items() if k != "page" and v})
    listing = table(
        ("Time (UTC)", "Key", "Model", "Endpoint", "Status", "Tokens in/out", "Cost (USD)"),
        (
            (
                as_utc(r.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                r.key_label or r.key_id or "",
                r.model,
                r.endpoint,
                r.status_code,
                f"{r.prompt_tokens}/{r.completion_tokens}",
                nano_to_usd(int(r.cost_nano)),
            )
            for r in rows
        ),
        f"{total} calls",
    )
    pages = (total + queries.PAGE_SIZE - 1) // queries.PAGE_SIZE
    csv_link = f'<p><a href="/console/usage.csv?{e(query)}" download>Download CSV</a></p>'
    return page("Usage", filters + csv_link + listing + pager("/console/usage", page_no, pages, query), who)


@router.get("/console/usage.csv", summary="Console: usage as CSV (same filters)")
@guarded
async def usage_csv(request: Request) -> Response:
    who = await reseller(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    page_no, filt = 1, _filter(request)
    while True:  # every matching row, a page at a time
        rows, total = await queries.usage_rows(
            request.app.state.services.engine, who.account_id, filt, page_no, 1000
        )
        for r in rows:
            writer.writerow(
                [
                    as_utc(r.created_at).isoformat(),
                    r.request_id,
                    r.key_id or "",
                    r.key_label or "",
                    r.model,
                    r.endpoint,
                    r.status_code,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.units,
                    nano_to_usd(int(r.cost_nano)),
                ]
            )
        if page_no * 1000 >= total:
            break
        page_no += 1
    headers = {"content-disposition": "attachment; filename=usage.csv", "cache-control": "no-store"}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@router.get("/console/models", summary="Console: models and the prices you pay")
@guarded
async def models_page(request: Request) -> Response:
    who = await reseller(request)
    catalog = request.app.state.services.catalog
    rows = []
    for m in sorted(catalog.models.values(), key=lambda m: (m.type, m.id)):
        p = m.token_prices
        rows.append(
            (
                m.id,
                m.type,
                nano_to_usd(p.input) if p else "—",
                nano_to_usd(p.output) if p else "—",
                "yes" if catalog.private(m) else "no",
            )
        )
    body = (
        "<p>Token prices are USD per 1M tokens, markup included: what your account is charged.</p>"
        + table(("Model", "Type", "Input", "Output", "Private (embedded)"), rows, "Models")
    )
    return page("Models", body, who)


@router.get("/console/jobs", summary="Console: async jobs")
@guarded
async def jobs_page(request: Request) -> Response:
    who = await reseller(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in JOB_STATES:
        status = None
    page_no = _page_no(request)
    rows, total = await queries.job_rows(request.app.state.services.engine, who.account_id, status, page_no)
    tabs = " ".join(
        f'<a href="/console/jobs?status={s}"{" aria-current=page" if s == status else ""}>{s}</a>'
        for s in JOB_STATES
    )
    listing = table(
        ("Job", "Kind", "Model", "Status", "Progress", "Cost (USD)", "Created (UTC)", "Error"),
        (
            (
                r.id,
                r.kind,
                r.model,
                r.status,
                f"{r.progress}%",
                nano_to_usd(int(r.cost_nano or r.quote_nano)),
                as_utc(r.created_at).strftime("%Y-%m-%d %H:%M"),
                r.error_code or "",
            )
            for r in rows
        ),
        f"{total} jobs",
    )
    pages = (total + queries.PAGE_SIZE - 1) // queries.PAGE_SIZE
    query = urlencode({"status": status} if status else {})
    body = (
        f'<p>Show: <a href="/console/jobs">all</a> {tabs}</p>'
        + listing
        + pager("/console/jobs", page_no, pages, query)
    )
    return page("Jobs", body, who)


@router.get("/console/quickstart", summary="Console: quick start snippets")
@guarded
async def quickstart(request: Request) -> Response:
    who = await reseller(request)
    base = str(request.base_url).rstrip("/") + "/v1"
    model = next(
        (m.id for m in request.app.state.services.catalog.models.values() if m.type == "text"), "MODEL"
    )
    snippets = {
        "curl": f'curl {base}/chat/completions \\\n  -H "Authorization: Bearer $TOLLWAY_API_KEY" \\\n'
        f'  -H "Content-Type: application/json" \\\n  -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'',
        "Python": f'from openai import OpenAI\n\nclient = OpenAI(base_url="{base}", api_key=os.environ["TOLLWAY_API_KEY"])\n'
        f'answer = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello"}}])\n'
        "print(answer.choices[0].message.content)",
        "JavaScript": f'import OpenAI from "openai";\n\nconst client = new OpenAI({{ baseURL: "{base}", apiKey: process.env.TOLLWAY_API_KEY }});\n'
        f'const answer = await client.chat.completions.create({{ model: "{model}", messages: [{{ role: "user", content: "Hello" }}] }});\n'
        "console.log(answer.choices[0].message.content);",
    }
    body = f"<p>Your base URL: <code>{e(base)}</code>. Create a key on the Keys page and export it as TOLLWAY_API_KEY.</p>"
    for name, code in snippets.items():
        body += f"<h2>{e(name)}</h2><pre><code>{e(code)}</code></pre>"
    return page("Quick start", body, who)


@router.get("/console/funding", summary="Console: how to fund the account")
@guarded
async def funding(request: Request) -> Response:
    who = await reseller(request)
    return page("Funding", await _funding_body(request, who), who)


async def _funding_body(request: Request, who: Viewer, extra: str = "") -> str:
    services = request.app.state.services
    topups, deposits = services.stripe, services.deposits
    if topups is None and deposits is None:
        return (
            "<p>Self-service deposits (cards, crypto) are not enabled on this Tollway.</p>"
            "<p>Your operator credits your account; ask them for a top-up. Credits appear on your dashboard at once.</p>"
        )
    body = extra
    if topups is not None:
        bounds = f"${nano_to_usd(topups.min_nano)} to ${nano_to_usd(topups.max_nano)}, whole cents"
        body += form(
            "/console/funding/top-up",
            who,
            field("amount_usd", "Amount (USD)", value="20.00", required=True, hint=bounds)
            + "<p><button type=submit>Top up by card</button></p>",
        )
    if deposits is not None:  # USDC to the account's own address (core/funding/deposits.py)
        found = await deposits.addresses.address_of(who.account_id)
        terms = deposits.watcher.terms
        body += (
            "<h2>USDC on Base</h2>"
            f"<p>Your deposit address: <code>{e(found.address)}</code></p>"
            f"<p>Send USDC (token contract <code>{e(terms.contract)}</code>, chain id {deposits.chain_id}) to "
            f"this address. It is credited after {terms.confirmations} confirmations, one USDC for one USD; "
            f"a deposit below ${e(nano_to_usd(units_to_nano(terms.min_units)))} is not credited.</p>"
        )
    return body


@router.post("/console/funding/top-up", summary="Console: start a card top-up (Stripe Checkout)")
@guarded
async def top_up(request: Request) -> Response:
    """A Checkout Session, then a link to it: the console's CSP (form-action 'self') forbids a form's
    redirect to another site, a link is the customer's own navigation."""
    who = await reseller(request)
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    topups = request.app.state.services.stripe
    if topups is None:
        raise TollwayError(ErrorCode.NOT_FOUND, "Card top-ups are not enabled on this Tollway.")
    try:
        made = await topups.create(who.account_id, usd_to_nano(data.get("amount_usd", "").strip()))
    except (TollwayError, ValueError) as exc:
        message = exc.message if isinstance(exc, TollwayError) else "Enter an amount in USD, e.g. 20.00."
        status = exc.status if isinstance(exc, TollwayError) else 400
        return page("Funding", await _funding_body(request, who, notice(message)), who, status)
    link = (
        f'<p class="ok">Top-up of ${e(nano_to_usd(made.amount_nano))} ready. '
        f'<a href="{e(made.url)}" rel="noreferrer">Continue to payment</a>; your balance is credited once it is paid.</p>'
    )
    return page("Funding", link, who, 201)
