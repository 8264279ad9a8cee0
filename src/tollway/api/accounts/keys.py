"""Reseller key management, NightVeil shape: `POST/GET keys`, `DELETE keys/{id}`, `GET keys/events`.

An admin-scope key of an account manages that account's keys only; inference keys get 403 and the
operator key (which has no account) uses the operator routes instead. Another tenant's key id is
404, never data.

Revocation is instant in this process (the auth cache is evicted); other replicas see it when
their cache entry expires (TOLLWAY_KEY_CACHE_SECONDS) until cross-replica invalidation lands.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, documented
from tollway.core.access.keys import KeySettings, check_future
from tollway.core.accounts import audit
from tollway.core.accounts.audit import Actor
from tollway.core.accounts.key_admin import with_spend
from tollway.core.caller import Caller
from tollway.core.inference.schemas import validate
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["reseller keys"])


async def key_admin_caller(request: Request) -> Caller:
    """An admin-scope key of an account: the only caller that manages that account's keys."""
    who = await caller(request)
    if who.is_operator or who.account_id is None:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED,
            "The operator key has no account; manage keys with /v1/admin/accounts/{id}/keys.",
        )
    if who.scope != "admin":
        raise TollwayError(ErrorCode.UNAUTHORIZED, "Managing keys needs an admin-scope key of the account.")
    return who


def actor_of(who: Caller) -> str:
    return who.key_id or "operator"


def audit_actor(request: Request, who: Caller) -> Actor:
    """The acting key and the client's address, for the audit log (api/accounts/operator.py uses it too)."""
    return Actor(actor_of(who), request.client.host if request.client else None)


@router.post(
    "/keys",
    summary="Mint a key on your account (the secret is shown once, as `key`)",
    **documented(body=KeySettings, errors=(*KEYED, 415), status=201),
)
async def mint_key(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    settings = validate(KeySettings, await read_json(request))
    check_future(settings.expires_at, "expires_at")
    assert who.account_id is not None
    services = request.app.state.services
    key = await services.keys.mint(who.account_id, settings, actor=actor_of(who))
    await audit.record(
        services.engine, audit_actor(request, who), "key.mint", account_id=who.account_id, target=key["id"]
    )
    return JSON(key, status_code=201)


@router.get(
    "/keys",
    summary="Your account's active keys with spend today/this month and last use (never the secrets)",
    **documented(errors=KEYED),
)
async def list_keys(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    assert who.account_id is not None
    services = request.app.state.services
    data = await with_spend(services.engine, who.account_id, await services.keys.list(who.account_id))
    return JSON({"object": "list", "data": data})


@router.get(
    "/keys/events",
    summary="Audit trail of your account's key events (newest first)",
    **documented(errors=KEYED),
)
async def key_events(request: Request, who: Caller = Depends(key_admin_caller)) -> Response:
    assert who.account_id is not None
    return JSON({"object": "list", "data": await request.app.state.services.keys.events(who.account_id)})


@router.delete("/keys/{key_id}", summary="Revoke one of your keys, at once", **documented(errors=BY_ID))
async def revoke_key(request: Request, key_id: str, who: Caller = Depends(key_admin_caller)) -> Response:
    services = request.app.state.services
    key = await services.keys.revoke(key_id, account_id=who.account_id, actor=actor_of(who))
    await audit.record(
        services.engine, audit_actor(request, who), "key.revoke", account_id=who.account_id, target=key_id
    )
    return JSON(key)
