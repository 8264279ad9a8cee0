"""Edit and rotate keys (issue 24): the operator's on any account (`/admin/keys/{id}`), an admin-scope
key's on its own account (`/keys/{id}`; another tenant's key is 404). Thin: core/accounts/key_admin.py.
Every change is in the audit log, and in the account's key events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.accounts.keys import actor_of, key_admin_caller
from tollway.api.accounts.keys import audit_actor as actor
from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import WRITES, documented
from tollway.core.accounts import audit
from tollway.core.accounts.key_admin import KeyAdmin, KeyPatch, Rotation
from tollway.core.caller import Caller
from tollway.core.inference.schemas import validate

operator_router = APIRouter(prefix="/admin", tags=["operator"])
router = APIRouter(tags=["reseller keys"])
NO_STORE = {"cache-control": "no-store"}  # a rotation's answer carries the new secret


def _admin(request: Request) -> KeyAdmin:
    services = request.app.state.services
    return KeyAdmin(services.engine, services.keys)


async def _edit(request: Request, key_id: str, who: Caller) -> Response:
    patch = validate(KeyPatch, await read_json(request))
    key, fields = await _admin(request).edit(key_id, patch, account_id=who.account_id, actor=actor_of(who))
    if fields:
        await audit.record(
            request.app.state.services.engine,
            actor(request, who),
            "key.edit",
            account_id=key["account_id"],
            target=key_id,
            details={"fields": fields},
        )
    return JSON(key)


async def _rotate(request: Request, key_id: str, who: Caller) -> Response:
    body = validate(Rotation, await read_json(request))
    rotated = await _admin(request).rotate(
        key_id, body.grace_seconds, account_id=who.account_id, actor=actor_of(who)
    )
    await audit.record(
        request.app.state.services.engine,
        actor(request, who),
        "key.rotate",
        account_id=rotated["account_id"],
        target=key_id,
        details={"grace_seconds": body.grace_seconds},
    )
    return JSON(rotated, headers=NO_STORE)


@operator_router.patch(
    "/keys/{key_id}",
    summary="Edit any key: label, tier, limits, expiry (null clears one)",
    **documented(body=KeyPatch, errors=WRITES),
)
async def operator_edit(request: Request, key_id: str, who: Caller = Depends(operator_caller)) -> Response:
    return await _edit(request, key_id, who)


@operator_router.post(
    "/keys/{key_id}/rotate",
    summary="Rotate any key: a new secret (shown once); the old one works for grace_seconds",
    **documented(body=Rotation, errors=WRITES),
)
async def operator_rotate(request: Request, key_id: str, who: Caller = Depends(operator_caller)) -> Response:
    return await _rotate(request, key_id, who)


@router.patch(
    "/keys/{key_id}",
    summary="Edit one of your keys: label, tier, limits, expiry (null clears one)",
    **documented(body=KeyPatch, errors=WRITES),
)
async def edit_key(request: Request, key_id: str, who: Caller = Depends(key_admin_caller)) -> Response:
    return await _edit(request, key_id, who)


@router.post(
    "/keys/{key_id}/rotate",
    summary="Rotate one of your keys: a new secret (shown once); the old one works for grace_seconds",
    **documented(body=Rotation, errors=WRITES),
)
async def rotate_key(request: Request, key_id: str, who: Caller = Depends(key_admin_caller)) -> Response:
    return await _rotate(request, key_id, who)
