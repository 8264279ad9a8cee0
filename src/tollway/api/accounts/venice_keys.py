"""Venice's key API under `api_keys`: the same keys as the NightVeil routes, in Venice's field names.

`POST api_keys` (`apiKeyType`, `description`, `consumptionLimit`, `expiresAt`) → 200
`{"data": {..., "apiKey"}, "success": true}`; `GET api_keys` (`last6Chars`, never the secret);
`GET api_keys/{id}`; `PATCH api_keys` (`id` and what changes) → `{"data": <the key>, "success": true}`;
`DELETE api_keys?id=` → `{"success": true}`. Admin-scope keys only.

`modelPrivacy` (ALL | PRIVATE_TEXT | PRIVATE_ONLY) is the key's stored `model_privacy`, the same field
the NightVeil routes take: admission refuses a model it excludes (core/catalog/privacy.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from tollway.api.accounts.keys import actor_of, audit_actor, key_admin_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, WRITES, documented
from tollway.core.access.keys import ConsumptionLimit, KeySettings, check_future
from tollway.core.accounts import audit
from tollway.core.accounts.key_admin import KeyAdmin, KeyPatch
from tollway.core.caller import Caller
from tollway.core.catalog.privacy import ModelPrivacy
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import UsdAmount
from tollway.core.money.prices import usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["venice keys"])
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


class VeniceLimit(BaseModel):
    """Per-epoch (24 h) limits. Tollway bills in USD; a Diem is a dollar of daily credit.

    Numbers, as Venice sends them, or decimal strings: the one amount rule of core/money/amounts.py."""

    model_config = ConfigDict(extra="forbid")
    usd: UsdAmount | None = None
    diem: UsdAmount | None = None
    vcu: UsdAmount | None = None


def expiry_form(value: str | None) -> str | None:
    if value is None or value == "":
        return value
    if _DATE.match(value) or _INSTANT.match(value):
        try:
            parse_expiry(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date of the calendar") from None
        return value
    raise ValueError('use "", YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS(.sss)Z')


# Venice's `limitPeriod` ↔ a key limit's period. A weekly limit (minted on /v1/keys) has no Venice name.
PERIODS = {"EPOCH": "day", "MONTH": "month", "LIFETIME": "total"}
VENICE_PERIODS = {period: name for name, period in PERIODS.items()}
VCU_IGNORED = '299 - "consumptionLimit.vcu is deprecated and was ignored: set usd (or diem)"'


class VeniceNewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiKeyType: Literal["INFERENCE", "ADMIN"]
    description: str = Field(min_length=1, max_length=200)
    consumptionLimit: VeniceLimit | None = None
    expiresAt: str | None = None
    limitPeriod: Literal["EPOCH", "MONTH", "LIFETIME"] = "EPOCH"  # Venice's legacy default: daily
    modelPrivacy: ModelPrivacy = "ALL"

    _check_expiry = field_validator("expiresAt")(expiry_form)


class VeniceKeyUpdate(BaseModel):
    """`PATCH api_keys`: a field left out is left as it is; `expiresAt` "" or null removes the expiry,
    a `consumptionLimit` with no usd/diem amount removes the limit. `limitPeriod` alone re-windows the
    key's limit (a key without one has nothing to re-window: it stays unlimited)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    description: str | None = Field(default=None, max_length=64)
    consumptionLimit: VeniceLimit | None = None
    expiresAt: str | None = None
    limitPeriod: Literal["EPOCH", "MONTH", "LIFETIME"] | None = None
    modelPrivacy: ModelPrivacy | None = None

    _check_expiry = field_validator("expiresAt")(expiry_form)


def key_patch(body: VeniceKeyUpdate, current: dict[str, Any]) -> KeyPatch:
    """Venice's update → the one KeyPatch the NightVeil edit routes apply."""
    fields = body.model_fields_set
    changes: dict[str, Any] = {}
    if "description" in fields and body.description is not None:
        changes["label"] = body.description
    if "expiresAt" in fields:
        expiry = parse_expiry(body.expiresAt)
        check_future(expiry, "expiresAt")
        changes["expires_at"] = expiry
    limit = current.get("consumption_limit")
    period = PERIODS[body.limitPeriod] if body.limitPeriod else (limit["period"] if limit else "day")
    if "consumptionLimit" in fields:
        given = body.consumptionLimit
        amounts = [a for a in (given.usd, given.diem) if a and usd_to_nano(a)] if given else []
        changes["consumption_limit"] = ConsumptionLimit(usd=amounts[0], period=period) if amounts else None  # type: ignore[arg-type]
    elif body.limitPeriod and limit:
        changes["consumption_limit"] = ConsumptionLimit(usd=limit["usd"], period=period)  # type: ignore[arg-type]
    if "modelPrivacy" in fields:
        changes["model_privacy"] = body.modelPrivacy or "ALL"
    return KeyPatch(**changes)


def parse_expiry(value: str | None) -> datetime | None:
    """Venice's three forms: "" (never), a date (its midnight UTC), an instant in UTC."""
    if not value:
        return None
    if _DATE.match(value):
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def venice_settings(body: VeniceNewKey) -> KeySettings:
    return key_settings(
        body.apiKeyType,
        body.description,
        body.consumptionLimit,
        body.expiresAt,
        body.limitPeriod,
        body.modelPrivacy,
    )


def key_settings(
    key_type: str,
    description: str,
    limit: VeniceLimit | None,
    expires_at: str | None,
    period: str = "EPOCH",
    privacy: ModelPrivacy = "ALL",
) -> KeySettings:
    """Venice fields → the one KeySettings model every minting route shares. A `vcu` limit is
    deprecated in Venice's document: ignored (the route says so in a `Warning` header)."""
    # 0 or null: no limit. The amounts are canonical already (UsdAmount), so ConsumptionLimit accepts them.
    amounts = [a for a in (limit.usd, limit.diem) if a and usd_to_nano(a)] if limit is not None else []
    expiry = parse_expiry(expires_at)
    check_future(expiry, "expiresAt")
    limit_usd = ConsumptionLimit(usd=amounts[0], period=PERIODS[period]) if amounts else None  # type: ignore[arg-type]
    return KeySettings(
        label=description,
        scope="admin" if key_type == "ADMIN" else "inference",
        expires_at=expiry,
        consumption_limit=limit_usd,
        model_privacy=privacy,
    )


def vcu_ignored(limit: VeniceLimit | None) -> bool:
    return limit is not None and bool(limit.vcu) and bool(usd_to_nano(limit.vcu or "0"))


def _instant(value: str | None) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def venice_limits(view: dict[str, Any]) -> dict[str, float | None]:
    limit = view.get("consumption_limit")
    return {"usd": float(Decimal(limit["usd"])) if limit else None, "diem": None, "vcu": None}


def venice_policy(view: dict[str, Any]) -> dict[str, str]:
    """`limitPeriod` (EPOCH when the key has no limit: Venice's default) and `modelPrivacy`."""
    limit = view.get("consumption_limit")
    period = VENICE_PERIODS.get(limit["period"]) if limit else "EPOCH"
    return {**({"limitPeriod": period} if period else {}), "modelPrivacy": view.get("model_privacy") or "ALL"}


def venice_view(view: dict[str, Any]) -> dict[str, Any]:
    """A key as Venice lists it (`GetApiKeys200ResponseDataInner`): never the secret."""
    return {
        "apiKeyType": str(view["scope"]).upper(),
        "consumptionLimits": venice_limits(view),
        **venice_policy(view),
        "createdAt": _instant(view["created_at"]),
        "description": view["label"] or "",  # a string in Venice's document; unlabelled keys exist
        "expiresAt": _instant(view["expires_at"]),
        "id": view["id"],
        "last6Chars": view["last6Chars"],
        "lastUsedAt": None,  # not tracked: a write per request would cost the hot path
    }


def venice_created(view: dict[str, Any]) -> dict[str, Any]:
    """`CreateApiKey200Response`: the secret, this one time, as `apiKey`."""
    return {
        "data": {
            "apiKey": view["key"],
            "apiKeyType": str(view["scope"]).upper(),
            "consumptionLimit": venice_limits(view),
            **venice_policy(view),
            "description": view["label"] or "",
            "expiresAt": _instant(view["expires_at"]),
            "id": view["id"],
        },
        "success": True,
    }


@router.post(
    "/api_keys",
    summary="Create an API key (Venice shape; the secret is data.apiKey, shown once)",
    **documented(body=VeniceNewKey, errors=(*KEYED, 415)),
)
async def create_api_key(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    body = validate(VeniceNewKey, await read_json(request))
    assert who.account_id is not None
    key = await request.app.state.services.keys.mint(
        who.account_id, venice_settings(body), actor=actor_of(who)
    )
    return JSON(
        venice_created(key), headers={"warning": VCU_IGNORED} if vcu_ignored(body.consumptionLimit) else None
    )


@router.patch(
    "/api_keys",
    summary="Update an API key (Venice shape): description, expiry, consumption limit and its period, "
    "model privacy",
    **documented(body=VeniceKeyUpdate, errors=WRITES),
)
async def update_api_key(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    body = validate(VeniceKeyUpdate, await read_json(request))
    assert who.account_id is not None
    services = request.app.state.services
    current = await services.keys.get(body.id, who.account_id)  # another tenant's key: 404
    key, fields = await KeyAdmin(services.engine, services.keys).edit(
        body.id, key_patch(body, current), account_id=who.account_id, actor=actor_of(who)
    )
    if fields:  # in the audit log, as the NightVeil edit routes record it
        await audit.record(
            services.engine,
            audit_actor(request, who),
            "key.edit",
            account_id=key["account_id"],
            target=body.id,
            details={"fields": fields},
        )
    return JSON(
        {"data": venice_view(key), "success": True},
        headers={"warning": VCU_IGNORED} if vcu_ignored(body.consumptionLimit) else None,
    )


@router.get("/api_keys", summary="Active API keys (Venice shape)", **documented(errors=KEYED))
async def list_api_keys(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    assert who.account_id is not None
    keys = await request.app.state.services.keys.list(who.account_id)
    return JSON({"data": [venice_view(k) for k in keys], "object": "list"})


@router.delete(
    "/api_keys", summary="Delete (revoke) an API key: DELETE /api_keys?id=", **documented(errors=BY_ID)
)
async def delete_api_key(
    request: Request, id: str | None = None, who: Caller = Depends(key_admin_caller)
) -> Response:
    if not id:
        raise TollwayError(ErrorCode.VALIDATION, "Pass the key id as the `id` query parameter.", param="id")
    await request.app.state.services.keys.revoke(id, account_id=who.account_id, actor=actor_of(who))
    return JSON({"success": True})


@router.get("/api_keys/{key_id}", summary="One API key (Venice shape)", **documented(errors=BY_ID))
async def get_api_key(request: Request, key_id: str, who: Caller = Depends(key_admin_caller)) -> Response:
    assert who.account_id is not None
    return JSON({"data": venice_view(await request.app.state.services.keys.get(key_id, who.account_id))})
