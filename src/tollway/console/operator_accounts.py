"""The operator's accounts: search and page through them (core/accounts/directory.py), an account's page
with its edit form, suspend and resume, credit/debit/refund with a reason (core/accounts/adjustments.py,
once per form render: a hidden idempotency key), its keys, its adjustments and its billing statement
as CSV. Each action is written to the admin audit log as the admin API's route writes it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field
from starlette.responses import Response

from tollway.console import queries
from tollway.console.html import (
    checkbox,
    e,
    field,
    form,
    guarded,
    idempotency_field,
    notice,
    page,
    select,
    table,
)
from tollway.console.operator import account_forms, account_table, operator
from tollway.console.sessions import Viewer, audited, check_csrf
from tollway.core.accounts.adjustments import Adjustment, AdjustmentFields, Adjustments
from tollway.core.accounts.directory import AccountDirectory, AccountPatch, known_plans
from tollway.core.inference.schemas import validate
from tollway.core.money.prices import usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
TIERS = ("sfw", "uncensored")
PAGE = 25


class AdjustForm(AdjustmentFields):
    """The API's adjustment body (api/accounts/operator.py), from a form: the same rules."""

    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(min_length=1, max_length=100)


def _directory(request: Request) -> AccountDirectory:
    services = request.app.state.services
    return AccountDirectory(services.engine, services.accounts, services.keys)


async def _data(request: Request, who: Viewer) -> dict[str, Any]:
    raw = await request.form()
    check_csrf(who, str(raw.get("csrf") or ""))
    data: dict[str, Any] = {k: str(v) for k, v in raw.items()}
    data["content_tiers"] = [str(v) for v in raw.getlist("content_tiers")]
    return data


@router.get("/console/operator/accounts", summary="Console: search, look up and create accounts")
@guarded
async def accounts_page(request: Request) -> Response:
    who = await operator(request)
    q = request.query_params
    wanted = q.get("id")
    top = _top(await request.app.state.services.accounts.get(wanted)) if wanted else ""
    query, after = (q.get("q") or "").strip()[:200], (q.get("after") or "")[:40] or None
    found, cursor = await _directory(request).page(query=query or None, after=after, limit=PAGE)
    search = (
        '<form method="get" action="/console/operator/accounts" role="search" class="filters">'
        + field("q", "Search accounts", value=query, hint="An account id, or part of a name (any case).")
        + '<p><button type="submit">Search</button></p></form>'
    )
    rows = [
        (
            f'<a href="/console/operator/accounts/{e(a.id)}">{e(a.id)}</a>',
            e(a.name),
            e(a.public()["balance_usd"]),
            e(a.plan),
            "suspended" if a.suspended else "active",
        )
        for a in found
    ]
    listing = table(("Account", "Name", "Balance (USD)", "Plan", "State"), rows, "Accounts", raw_cols=5)
    links = []
    if after:
        links.append(f'<a href="/console/operator/accounts?{e(urlencode({"q": query}))}">First page</a>')
    if cursor:
        more = urlencode({"q": query, "after": cursor})
        links.append(f'<a href="/console/operator/accounts?{e(more)}" rel="next">Next page</a>')
    pager = f'<nav class="pager" aria-label="Pages">{" ".join(links)}</nav>'
    return page("Accounts", top + search + listing + pager + account_forms(who), who)


def _top(account: Any) -> str:
    link = f'<p><a href="/console/operator/accounts/{e(account.id)}">Open {e(account.name)}</a></p>'
    return account_table(account) + link


def _edit_form(who: Viewer, account: Any, plans: Any) -> str:
    tiers = account.content_tiers if account.content_tiers is not None else TIERS
    inner = (
        field("name", "Name", value=account.name, required=True)
        + select("plan", "Plan", [(p, p) for p in sorted(plans)], account.plan or "")
        + "<fieldset><legend>Content tiers allowed</legend>"
        + "".join(checkbox("content_tiers", t, t in tiers, value=t, box_id=f"tier-{t}") for t in TIERS)
        + "</fieldset>"
        + checkbox("age_verified", "Age verified", bool(account.age_verified))
        + '<p><button type="submit">Save account</button></p>'
    )
    return form(f"/console/operator/accounts/{account.id}/edit", who, inner)


def _adjust_form(who: Viewer, account_id: str) -> str:
    inner = (
        select("type", "Adjustment", (("credit", "credit"), ("debit", "debit"), ("refund", "refund")))
        + field("amount_usd", "Amount (USD)", required=True, hint="A positive decimal, e.g. 12.50")
        + field("reason", "Reason", required=True, hint="Kept with the ledger entry; shown in the statement.")
        + idempotency_field()
        + '<p><button type="submit">Apply adjustment</button></p>'
    )
    return form(f"/console/operator/accounts/{account_id}/adjust", who, inner)


async def _account_page(
    request: Request, who: Viewer, account_id: str, top: str = "", status: int = 200
) -> Response:
    services = request.app.state.services
    account = await services.accounts.get(account_id)
    plans = known_plans(services.pipeline.rate_gate)
    state = "suspended" if account.suspended else "active"
    action = "resume" if account.suspended else "suspend"
    toggle = form(
        f"/console/operator/accounts/{account.id}/{action}",
        who,
        f'<button type="submit">{action.capitalize()} account</button>',
        css="inline",
    )
    keys = await services.keys.list(account_id)
    key_rows = ((k["label"] or "", k["display"], k["scope"], k["content_tier"]) for k in keys)
    moves = await Adjustments(services.engine, services.accounts).of(account_id, limit=20)
    move_rows = ((m["created_at"], m["type"], m["amount_usd"], m["reason"], m["actor"]) for m in moves)
    statement = f"/console/operator/accounts/{e(account.id)}/statement.csv"
    body = (
        top
        + account_table(account)
        + f'<p class="actions">This account is <strong id="state">{state}</strong>. {toggle}</p>'
        + "<h2>Edit</h2>"
        + _edit_form(who, account, plans)
        + "<h2>Credit, debit or refund</h2>"
        + _adjust_form(who, account.id)
        + table(("When (UTC)", "Type", "Amount (USD)", "Reason", "By"), move_rows, "Recent adjustments")
        + "<h2>Billing statement</h2>"
        + queries.statement_form(statement)
        + table(("Label", "Key", "Scope", "Tier"), key_rows, "Active keys")
        + f'<p><a href="/console/operator/audit?account_id={e(account.id)}">Audit log of this account</a></p>'
    )
    return page(f"Account {account.name}", body, who, status)


@router.get("/console/operator/accounts/{account_id}", summary="Console: an account (operator)")
@guarded
async def account_page(request: Request, account_id: str) -> Response:
    return await _account_page(request, await operator(request), account_id)


@router.post("/console/operator/accounts/{account_id}/edit", summary="Console: edit an account")
@guarded
async def edit_account(request: Request, account_id: str) -> Response:
    who = await operator(request)
    data = await _data(request, who)
    services = request.app.state.services
    current = await services.accounts.get(account_id)
    wanted: dict[str, Any] = {"name": data.get("name", ""), "plan": data.get("plan") or current.plan}
    wanted["age_verified"] = data.get("age_verified") == "on"
    tiers = sorted(set(data["content_tiers"]))
    if tiers != sorted(current.content_tiers if current.content_tiers is not None else TIERS):
        wanted["content_tiers"] = tiers
    public = current.public()
    body = {k: v for k, v in wanted.items() if k == "content_tiers" or public.get(k) != v}
    try:
        patch = validate(AccountPatch, body)
        changes = await _directory(request).edit(account_id, patch, known_plans(services.pipeline.rate_gate))
    except TollwayError as exc:
        return await _account_page(request, who, account_id, notice(exc.message), exc.status)
    if changes:
        await audited(request, who, "account.edit", account_id=account_id, details=changes)
    said = ", ".join(sorted(changes)) if changes else "nothing changed"
    return await _account_page(request, who, account_id, notice(f"Saved: {said}.", "ok"))


async def _suspension(request: Request, account_id: str, suspended: bool) -> Response:
    who = await operator(request)
    await _data(request, who)
    changes = await _directory(request).edit(account_id, AccountPatch(suspended=suspended), ())
    action = "account.suspend" if suspended else "account.resume"
    await audited(request, who, action, account_id=account_id, details=changes)
    said = "suspended: its keys are refused (403 ACCOUNT_SUSPENDED)" if suspended else "resumed"
    return await _account_page(request, who, account_id, notice(f"Account {said}.", "ok"))


@router.post("/console/operator/accounts/{account_id}/suspend", summary="Console: suspend an account")
@guarded
async def suspend(request: Request, account_id: str) -> Response:
    return await _suspension(request, account_id, True)


@router.post("/console/operator/accounts/{account_id}/resume", summary="Console: resume an account")
@guarded
async def resume(request: Request, account_id: str) -> Response:
    return await _suspension(request, account_id, False)


@router.post("/console/operator/accounts/{account_id}/adjust", summary="Console: credit, debit, refund")
@guarded
async def adjust(request: Request, account_id: str) -> Response:
    who = await operator(request)
    data = await _data(request, who)
    services = request.app.state.services
    try:
        body = validate(AdjustForm, data)
        if not body.idempotency_key.isprintable():
            raise TollwayError(ErrorCode.VALIDATION, "Reload the page: the form's key is damaged.")
        change = Adjustment(account_id, body.type, usd_to_nano(body.amount_usd), body.reason, "operator")
        done = await Adjustments(services.engine, services.accounts).apply(change, body.idempotency_key)
    except TollwayError as exc:
        return await _account_page(request, who, account_id, notice(exc.message), exc.status)
    if done["applied"]:
        details = {"type": body.type, "amount_usd": done["amount_usd"], "reference": done["reference"]}
        await audited(request, who, "balance.adjust", account_id=account_id, details=details)
        message = f"Applied: {body.type} of ${body.amount_usd} ({body.reason})."
    else:
        message = "This form was already submitted: the adjustment was applied once, nothing changed now."
    return await _account_page(request, who, account_id, notice(message, "ok"))


@router.get(
    "/console/operator/accounts/{account_id}/statement.csv", summary="Console: an account's statement"
)
@guarded
async def statement_csv(request: Request, account_id: str) -> Response:
    await operator(request)
    await request.app.state.services.accounts.get(account_id)
    return await queries.statement_response(request, account_id)
