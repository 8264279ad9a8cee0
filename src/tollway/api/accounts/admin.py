"""Operator routes: accounts, credits and keys (DESIGN §9). Need the operator key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from tollway.api.accounts.keys import audit_actor as actor
from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, WRITES, documented
from tollway.core.access.keys import KeySettings
from tollway.core.accounts import audit
from tollway.core.accounts.key_admin import with_spend
from tollway.core.caller import Caller
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import PositiveUsdAmount, UsdAmount
from tollway.core.money.prices import usd_to_nano

router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    credit_usd: UsdAmount = "0"
    age_verified: StrictBool = False


class Credit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: PositiveUsdAmount
    reference: str = Field(min_length=1, max_length=120)


@router.post(
    "/accounts", summary="Create an account", **documented(body=NewAccount, errors=(*KEYED, 415), status=201)
)
async def create_account(request: Request, who: Caller = Depends(operator_caller)) -> Response:
    body = validate(NewAccount, await read_json(request))
    services = request.app.state.services
    account = await services.accounts.create(
        body.name, credit_nano=usd_to_nano(body.credit_usd), age_verified=body.age_verified
    )
    details = {"credit_usd": body.credit_usd, "age_verified": body.age_verified}
    await audit.record(
        services.engine, actor(request, who), "account.create", account_id=account.id, details=details
    )
    return JSON(account.public(), status_code=201)


@router.get("/accounts/{account_id}", summary="An account with its balance", **documented(errors=BY_ID))
async def get_account(request: Request, account_id: str) -> Response:
    return JSON((await request.app.state.services.accounts.get(account_id)).public())


@router.post(
    "/accounts/{account_id}/credits",
    summary="Credit an account (idempotent by reference)",
    **documented(body=Credit, errors=WRITES),
)
async def credit_account(
    request: Request, account_id: str, who: Caller = Depends(operator_caller)
) -> Response:
    body = validate(Credit, await read_json(request))
    services = request.app.state.services
    applied = await services.accounts.credit(
        account_id, usd_to_nano(body.amount_usd), reference=body.reference, param="amount_usd"
    )
    if applied:
        details = {"amount_usd": body.amount_usd, "reference": body.reference}
        await audit.record(
            services.engine, actor(request, who), "balance.credit", account_id=account_id, details=details
        )
    account = await services.accounts.get(account_id)
    return JSON({**account.public(), "applied": applied, "reference": body.reference})


@router.post(
    "/accounts/{account_id}/keys",
    summary="Mint a key for an account",
    **documented(body=KeySettings, errors=WRITES, status=201),
)
async def mint_key(request: Request, account_id: str, who: Caller = Depends(operator_caller)) -> Response:
    settings = validate(KeySettings, await read_json(request))
    services = request.app.state.services
    key = await services.keys.mint(account_id, settings)
    await audit.record(
        services.engine, actor(request, who), "key.mint", account_id=account_id, target=key["id"]
    )
    return JSON(key, status_code=201)


@router.get(
    "/accounts/{account_id}/keys",
    summary="An account's active keys with spend today/this month and last use (never the secrets)",
    **documented(errors=BY_ID),
)
async def list_keys(request: Request, account_id: str) -> Response:
    services = request.app.state.services
    await services.accounts.get(account_id)
    data = await with_spend(services.engine, account_id, await services.keys.list(account_id))
    return JSON({"object": "list", "data": data})


@router.delete("/keys/{key_id}", summary="Revoke a key", **documented(errors=BY_ID))
async def revoke_key(request: Request, key_id: str, who: Caller = Depends(operator_caller)) -> Response:
    services = request.app.state.services
    key = await services.keys.revoke(key_id)
    await audit.record(
        services.engine, actor(request, who), "key.revoke", account_id=key["account_id"], target=key_id
    )
    return JSON(key)
