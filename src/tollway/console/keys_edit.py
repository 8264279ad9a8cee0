"""A reseller's key page: edit (label, tier, limits, expiry) and rotate (a new secret shown once, the old one
valid for the grace period chosen), through core/accounts/key_admin.py scoped to the session's account
(another account's key id is 404 and untouched); and the Billing page: the statement download and the
latest money movements with their source (console/queries.py `movements`).
Each action is in the admin audit log as the API's route writes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.base.clock import as_utc
from tollway.console import queries
from tollway.console.dashboard import reseller
from tollway.console.html import e, field, form, guarded, notice, page, select, table
from tollway.console.sessions import Viewer, audited, check_csrf
from tollway.core.accounts.key_admin import KeyAdmin, KeyPatch, Rotation
from tollway.core.inference.schemas import validate
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
GRACE = (
    ("0", "none: the old secret stops at once"),
    ("900", "15 minutes"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
)
PERIODS = (("total", "total"), ("day", "day"), ("week", "week"), ("month", "month"))


def _admin(request: Request) -> KeyAdmin:
    services = request.app.state.services
    return KeyAdmin(services.engine, services.keys)


async def _key(request: Request, who: Viewer, key_id: str) -> dict[str, Any]:
    """One of the session account's active keys; any other id is 'not found'."""
    for key in await request.app.state.services.keys.list(who.account_id):
        if key["id"] == key_id:
            found: dict[str, Any] = key
            return found
    raise TollwayError(ErrorCode.NOT_FOUND, f"No active key {key_id!r}.", param="id")


def _edit_form(who: Viewer, key: dict[str, Any]) -> str:
    limit = key["consumption_limit"] or {}
    rpm = (key["rate_limits"] or {}).get("rpm")
    expires = (key["expires_at"] or "")[:10]
    inner = (
        field("label", "Label", value=key["label"] or "", hint="Up to 200 characters.")
        + select(
            "content_tier",
            "Content tier",
            (("sfw", "sfw"), ("uncensored", "uncensored (age-verified accounts)")),
            key["content_tier"],
        )
        + field("limit_usd", "Spending limit (USD)", value=limit.get("usd", ""), hint="Empty: no limit.")
        + select("limit_period", "Limit period", PERIODS, limit.get("period", "total"))
        + field("rpm", "Requests per minute", kind="number", value="" if rpm is None else str(rpm))
        + field("expires_at", "Expires", kind="date", value=expires, hint="Empty: never.")
        + '<p><button type="submit">Save key</button></p>'
    )
    return form(f"/console/keys/{key['id']}/edit", who, inner)


def _rotate_form(who: Viewer, key: dict[str, Any]) -> str:
    inner = (
        select("grace_seconds", "Old secret keeps working for", GRACE, "3600")
        + '<p><button type="submit">Rotate key</button></p>'
    )
    return form(f"/console/keys/{key['id']}/rotate", who, inner)


async def _key_page(request: Request, who: Viewer, key_id: str, top: str = "", status: int = 200) -> Response:
    key = await _key(request, who, key_id)
    limit = key["consumption_limit"]
    facts = table(
        ("Field", "Value"),
        [
            ("Key", key["display"]),
            ("Scope", key["scope"]),
            ("Tier", key["content_tier"]),
            ("Limit", f"{limit['usd']} / {limit['period']}" if limit else "none"),
            ("Expires", key["expires_at"] or "never"),
        ],
        "Key",
    )
    body = (
        top
        + facts
        + "<h2>Edit</h2>"
        + _edit_form(who, key)
        + "<h2>Rotate</h2><p>A new secret replaces this one; deployed clients keep working with the old "
        "secret for the grace period you choose, then it is refused.</p>"
        + _rotate_form(who, key)
        + '<p><a href="/console/keys">Back to keys</a></p>'
    )
    return page(f"Key {key['label'] or key['id']}", body, who, status)


@router.get("/console/keys/{key_id}", summary="Console: one of your keys")
@guarded
async def key_page(request: Request, key_id: str) -> Response:
    return await _key_page(request, await reseller(request), key_id)


def _patch(data: dict[str, str], key: dict[str, Any]) -> dict[str, Any]:
    """Only what the form changes: a field left as it was is not sent (so not re-checked or audited)."""
    out: dict[str, Any] = {}
    label = data.get("label", "")
    if label != (key["label"] or ""):
        out["label"] = label or None
    if data.get("content_tier", key["content_tier"]) != key["content_tier"]:
        out["content_tier"] = data["content_tier"]
    usd = data.get("limit_usd", "").strip()
    limit = {"usd": usd, "period": data.get("limit_period") or "total"} if usd else None
    if limit != key["consumption_limit"]:
        out["consumption_limit"] = limit
    rates = dict(key["rate_limits"] or {})
    rpm = data.get("rpm", "").strip()
    if rpm != str(rates.get("rpm") or ""):
        rates.pop("rpm", None)
        out["rate_limits"] = ({**rates, "rpm": rpm} if rpm else rates) or None
    day = data.get("expires_at", "").strip()
    if day != (key["expires_at"] or "")[:10]:
        out["expires_at"] = f"{day}T23:59:59Z" if day else None
    return out


@router.post("/console/keys/{key_id}/edit", summary="Console: edit one of your keys")
@guarded
async def edit_key(request: Request, key_id: str) -> Response:
    who = await reseller(request)
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    key = await _key(request, who, key_id)
    try:
        patch = validate(KeyPatch, _patch(data, key))
        _, fields = await _admin(request).edit(
            key_id, patch, account_id=who.account_id, actor=who.caller.key_id or "operator"
        )
    except TollwayError as exc:
        return await _key_page(request, who, key_id, notice(exc.message), exc.status)
    if fields:
        details = {"fields": fields}
        await audited(request, who, "key.edit", account_id=who.account_id, target=key_id, details=details)
    said = ", ".join(fields) if fields else "nothing changed"
    return await _key_page(request, who, key_id, notice(f"Saved: {said}.", "ok"))


@router.post("/console/keys/{key_id}/rotate", summary="Console: rotate one of your keys")
@guarded
async def rotate_key(request: Request, key_id: str) -> Response:
    who = await reseller(request)
    data = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(who, data.get("csrf"))
    grace = data.get("grace_seconds", "")
    body = validate(Rotation, {"grace_seconds": int(grace) if grace.isdigit() and len(grace) < 9 else -1})
    rotated = await _admin(request).rotate(
        key_id, body.grace_seconds, account_id=who.account_id, actor=who.caller.key_id or "operator"
    )
    details = {"grace_seconds": body.grace_seconds}
    await audited(request, who, "key.rotate", account_id=who.account_id, target=key_id, details=details)
    until = rotated["previous_key_valid_until"]
    old = f"The old secret works until {until} (UTC)." if until else "The old secret no longer works."
    shown = (
        '<section class="secret" aria-labelledby="secret-h"><h2 id="secret-h">Your new secret</h2>'
        f"<p>Copy it now: it is shown this once and cannot be read again. {e(old)}</p>"
        f'<p><label for="new-secret">Secret</label><input id="new-secret" readonly value="{e(rotated["key"])}">'
        '<button type="button" data-copy="new-secret">Copy</button></p></section>'
    )
    return await _key_page(request, who, key_id, shown)


@router.get("/console/billing", summary="Console: your billing statement")
@guarded
async def billing(request: Request) -> Response:
    who = await reseller(request)
    moves = await queries.movements(request.app.state.services.engine, who.account_id)
    rows = [
        (
            as_utc(m.created_at).strftime("%Y-%m-%d %H:%M:%S"),
            "credit" if m.amount_nano > 0 else "debit",
            ("+" if m.amount_nano > 0 else "") + nano_to_usd(int(m.amount_nano)),
            queries.source(m.reference),
            m.reference,
        )
        for m in moves
    ]
    body = (
        "<p>Your account's statement: every call it was charged for, every top-up, credit, debit and "
        "refund, in time order, with plain decimal USD amounts.</p>"
        + queries.statement_form("/console/billing/statement.csv")
        + f"<h2>Money in and out</h2><p>The latest {queries.PAGE_SIZE} movements of your balance other "
        "than calls: card top-ups, USDC deposits, redemption codes, x402 payments, the operator's credits "
        "and debits, card refunds and disputes.</p>"
        + table(("Time (UTC)", "Type", "Amount (USD)", "Source", "Reference"), rows, "Money in and out")
    )
    return page("Billing", body, who)


@router.get("/console/billing/statement.csv", summary="Console: your billing statement as CSV")
@guarded
async def statement_csv(request: Request) -> Response:
    who = await reseller(request)
    return await queries.statement_response(request, who.account_id)
