"""The reseller's dashboard (balance, spend charts, request and error counts) and keys (create, revoke)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.console import queries
from tollway.console.charts import bar_chart
from tollway.console.html import e, field, form, guarded, notice, page, select, table
from tollway.console.sessions import Viewer, audited, check_csrf, viewer
from tollway.core.access.keys import KeySettings, check_future
from tollway.core.inference.schemas import validate
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
PERIODS = {1: "today", 7: "last 7 days", 30: "last 30 days"}


async def reseller(request: Request) -> Viewer:
    who = await viewer(request)
    if who.caller.is_operator:
        raise TollwayError(
            ErrorCode.NOT_FOUND, "This page is an account's; the operator's pages are in the menu."
        )
    return who


async def _form(request: Request, who: Viewer) -> dict[str, str]:
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    return data


@router.get("/console", summary="Console dashboard")
@guarded
async def dashboard(request: Request, days: int = 30) -> Response:
    who = await viewer(request)
    if who.caller.is_operator:
        from tollway.console.operator import status_body  # same floor, same package: the operator's home

        return page("Dashboard", await status_body(request), who)
    days = days if days in PERIODS else 30
    services = request.app.state.services
    account = await services.accounts.get(who.account_id)
    engine = services.engine
    totals = [(p, await queries.spend(engine, who.account_id, p)) for p in PERIODS]
    chosen = next(s for p, s in totals if p == days)
    summary = table(
        ("Period", "Spend (USD)", "Requests", "Errors"),
        ((PERIODS[p], f"{s.total:f}", s.requests, s.errors) for p, s in totals),
        "Spend and requests",
    )
    tabs = " ".join(
        f'<a href="/console?days={p}"{" aria-current=page" if p == days else ""}>{e(n)}</a>'
        for p, n in PERIODS.items()
    )
    body = (
        f'<p class="balance">Balance: <strong id="balance">${e(nano_to_usd(account.balance_nano))}</strong></p>'
        f"{summary}<p>Charts for: {tabs}</p>"
        + bar_chart(f"Spend by model, {PERIODS[days]} (USD)", chosen.by_model, chart_id="by-model")
        + bar_chart(f"Spend by key, {PERIODS[days]} (USD)", chosen.by_key, chart_id="by-key")
    )
    return page("Dashboard", body, who)


def _key_form(who: Viewer) -> str:
    inner = (
        field("label", "Label", hint="Up to 200 characters, shown in usage and charts.")
        + select(
            "scope",
            "Scope",
            (("inference", "inference: calls models"), ("admin", "admin: also manages keys")),
        )
        + select(
            "content_tier",
            "Content tier",
            (("sfw", "sfw"), ("uncensored", "uncensored (age-verified accounts)")),
        )
        + field("limit_usd", "Spending limit (USD, optional)", hint="e.g. 5.00")
        + select(
            "limit_period",
            "Limit period",
            (("total", "total"), ("day", "day"), ("week", "week"), ("month", "month")),
        )
        + field("rpm", "Requests per minute (optional)", kind="number")
        + field("expires_at", "Expires (optional)", kind="date")
        + '<p><button type="submit">Create key</button></p>'
    )
    return form("/console/keys", who, inner)


def _settings(data: dict[str, str]) -> KeySettings:
    body: dict[str, Any] = {
        "scope": data.get("scope") or "inference",
        "content_tier": data.get("content_tier") or "sfw",
    }
    if data.get("label"):
        body["label"] = data["label"]
    if data.get("limit_usd"):
        body["consumption_limit"] = {"usd": data["limit_usd"], "period": data.get("limit_period") or "total"}
    if data.get("rpm"):
        body["rate_limits"] = {"rpm": data["rpm"]}
    if data.get("expires_at"):
        body["expires_at"] = data["expires_at"] + "T23:59:59Z"
    settings = validate(KeySettings, body)
    check_future(settings.expires_at, "expires_at")
    return settings


async def _keys_page(request: Request, who: Viewer, top: str = "", status: int = 200) -> Response:
    keys = await request.app.state.services.keys.list(who.account_id)
    rows = []
    for k in keys:
        revoke = form(
            f"/console/keys/{k['id']}/revoke",
            who,
            f'<button type="submit" aria-label="Revoke key {e(k["label"] or k["id"])}">Revoke</button>',
            css="inline",
        )
        name = e(k["label"] or k["id"])
        edit = f'<a href="/console/keys/{e(k["id"])}" aria-label="Edit or rotate key {name}">Edit</a> '
        limit = k["consumption_limit"]
        rows.append(
            (
                k["label"] or "",
                k["display"],
                k["scope"],
                k["content_tier"],
                f"{limit['usd']} / {limit['period']}" if limit else "none",
                k["expires_at"] or "never",
                edit + revoke,
            )
        )
    listing = table(
        ("Label", "Key", "Scope", "Tier", "Limit", "Expires", "Action"), rows, "Active keys", raw_cols=1
    )
    return page("Keys", top + listing + "<h2>New key</h2>" + _key_form(who), who, status)


@router.get("/console/keys", summary="Console: your keys")
@guarded
async def keys_page(request: Request) -> Response:
    return await _keys_page(request, await reseller(request))


@router.post("/console/keys", summary="Console: create a key (secret shown once)")
@guarded
async def create_key(request: Request) -> Response:
    who = await reseller(request)
    data = await _form(request, who)
    try:
        settings = _settings(data)
    except TollwayError as exc:
        return await _keys_page(request, who, notice(exc.message), exc.status)
    key = await request.app.state.services.keys.mint(
        who.account_id, settings, actor=who.caller.key_id or "console"
    )
    await audited(request, who, "key.mint", account_id=who.account_id, target=key["id"])
    shown = (
        '<section class="secret" aria-labelledby="secret-h"><h2 id="secret-h">Your new key</h2>'
        "<p>Copy it now: it is shown this once and cannot be read again.</p>"
        f'<p><label for="new-secret">Secret</label><input id="new-secret" readonly value="{e(key["key"])}">'
        '<button type="button" data-copy="new-secret">Copy</button></p></section>'
    )
    return await _keys_page(request, who, shown, 201)


@router.post("/console/keys/{key_id}/revoke", summary="Console: revoke a key")
@guarded
async def revoke_key(request: Request, key_id: str) -> Response:
    who = await reseller(request)
    await _form(request, who)
    # Scoped to the session's account: another account's key id is "not found", never revoked.
    revoked = await request.app.state.services.keys.revoke(
        key_id, account_id=who.account_id, actor=who.caller.key_id or "console"
    )
    await audited(request, who, "key.revoke", account_id=who.account_id, target=key_id)
    return await _keys_page(request, who, notice(f"Key {revoked['label'] or revoked['id']} revoked.", "ok"))
