"""The operator's basic pages: create an account, credit one, system status.

The accounts directory and an account's page are operator_accounts.py; usage and revenue, upstreams,
the catalog and the audit log are operator_reports.py. Every action is in the admin audit log, written
as the API route doing the same writes it (sessions.audited).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway import __version__
from tollway.console import queries
from tollway.console.html import e, field, form, guarded, notice, page, table
from tollway.console.sessions import Viewer, audited, check_csrf, viewer
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import PositiveUsdAmount, UsdAmount
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()


class NewAccountForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=200)
    credit_usd: UsdAmount = "0"


class CreditForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    account_id: str = Field(min_length=1, max_length=40)
    amount_usd: PositiveUsdAmount
    reference: str = Field(min_length=1, max_length=120)


async def operator(request: Request) -> Viewer:
    who = await viewer(request)
    if not who.caller.is_operator:
        raise TollwayError(ErrorCode.NOT_FOUND, "This page is the operator's.")
    return who


async def status_body(request: Request) -> str:
    services = request.app.state.services
    settings = services.settings
    depth = await queries.queue_depth(services.engine)
    busy = await queries.processes_holding_leases(services.engine)
    rows = [
        ("Version", __version__),
        ("Database", "SQLite" if settings.async_database_url.startswith("sqlite") else "PostgreSQL"),
        (
            "Redis",
            "configured (limits and key events shared by replicas)"
            if settings.redis_url
            else "not configured (one replica)",
        ),
        ("Jobs runner", "on" if settings.jobs_runner else "off"),
        ("Jobs queued", depth.get("queued", 0)),
        ("Jobs running", depth.get("processing", 0)),
        ("Models in the catalog", len(services.catalog.models)),
        (
            "Replicas seen",
            f"{busy} process(es) holding a budget or job lease now. Tollway keeps no replica "
            "registry: idle replicas (and any without budget leases or jobs) do not show here; "
            "each replica's /metrics and /health answer for it.",
        ),
    ]
    return table(("What", "Value"), rows, "System status")


@router.get("/console/operator/status", summary="Console: system status (operator)")
@guarded
async def status_page(request: Request) -> Response:
    who = await operator(request)
    return page("System status", await status_body(request), who)


def _credit_form(who: Viewer) -> str:
    inner = (
        field("account_id", "Account id", required=True)
        + field("amount_usd", "Amount (USD)", required=True, hint="A positive decimal, e.g. 25.00")
        + field(
            "reference",
            "Reference",
            value=f"console-{uuid.uuid4().hex[:12]}",
            hint="Idempotency: the same reference never credits twice.",
            required=True,
        )
        + '<p><button type="submit">Credit</button></p>'
    )
    return form("/console/operator/credit", who, inner)


@router.get("/console/operator/credit", summary="Console: credit an account (operator)")
@guarded
async def credit_page(request: Request) -> Response:
    who = await operator(request)
    return page("Credit an account", _credit_form(who), who)


@router.post("/console/operator/credit", summary="Console: credit an account (operator)")
@guarded
async def credit(request: Request) -> Response:
    who = await operator(request)
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    services = request.app.state.services
    try:
        body = validate(CreditForm, data)
        await services.accounts.get(body.account_id)  # 404 with the id, before any money moves
        applied = await services.accounts.credit(
            body.account_id, usd_to_nano(body.amount_usd), reference=body.reference, param="amount_usd"
        )
    except TollwayError as exc:
        return page("Credit an account", notice(exc.message) + _credit_form(who), who, exc.status)
    if applied:
        details = {"amount_usd": body.amount_usd, "reference": body.reference}
        await audited(request, who, "balance.credit", account_id=body.account_id, details=details)
    account = await services.accounts.get(body.account_id)
    message = (
        f"Credited ${body.amount_usd} to {account.name}: balance now ${nano_to_usd(account.balance_nano)}."
        if applied
        else f"Reference {body.reference} was already used: nothing credited again."
    )
    return page("Credit an account", notice(message, "ok") + _credit_form(who), who)


def account_forms(who: Viewer) -> str:
    create = form(
        "/console/operator/accounts",
        who,
        field("name", "Account name", required=True)
        + field("credit_usd", "Opening credit (USD)", value="0")
        + '<p><button type="submit">Create account</button></p>',
    )
    lookup = (
        '<form method="get" action="/console/operator/accounts">'
        + field("id", "Account id")
        + '<p><button type="submit">Look up</button></p></form>'
    )
    return "<h2>Create an account</h2>" + create + "<h2>Look up an account</h2>" + lookup


def account_table(account: Any) -> str:
    view = account.public()
    rows = [
        (k, view[k])
        for k in ("id", "name", "balance_usd", "reserved_usd", "available_usd", "plan", "age_verified")
    ]
    return table(("Field", "Value"), rows, "Account")


@router.post("/console/operator/accounts", summary="Console: create an account (operator)")
@guarded
async def create_account(request: Request) -> Response:
    who = await operator(request)
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    try:
        body = validate(NewAccountForm, data)
    except TollwayError as exc:
        return page("Accounts", notice(exc.message) + account_forms(who), who, exc.status)
    account = await request.app.state.services.accounts.create(
        body.name, credit_nano=usd_to_nano(body.credit_usd)
    )
    details = {"credit_usd": body.credit_usd, "age_verified": False}
    await audited(request, who, "account.create", account_id=account.id, details=details)
    message = (
        notice(
            f"Account {account.name} created: its id is {account.id}. Mint its first admin key with the API.",
            "ok",
        )
        + f'<p><a href="/console/operator/accounts/{e(account.id)}">Open the account\'s page</a></p>'
    )
    return page("Accounts", message + account_table(account) + account_forms(who), who, 201)
