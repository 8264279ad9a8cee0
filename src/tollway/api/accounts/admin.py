"""Operator routes: accounts, credits and keys (DESIGN §9). Need the operator key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, WRITES, documented
from tollway.core.access.keys import KeySettings
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
async def create_account(request: Request) -> Response:
    body = validate(NewAccount, await read_json(request))
    account = await request.app.state.services.accounts.create(
        body.name, credit_nano=usd_to_nano(body.credit_usd), age_verified=body.age_verified
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
async def credit_account(request: Request, account_id: str) -> Response:
    body = validate(Credit, await read_json(request))
    services = request.app.state.services
    applied = await services.accounts.credit(
        account_id, usd_to_nano(body.amount_usd), reference=body.reference, param="amount_usd"
    )
    account = await services.accounts.get(account_id)
    return JSON({**account.public(), "applied": applied, "reference": body.reference})


@router.post(
    "/accounts/{account_id}/keys",
    summary="Mint a key for an account",
    **documented(body=KeySettings, errors=WRITES, status=201),
)
async def mint_key(request: Request, account_id: str) -> Response:
    settings = validate(KeySettings, await read_json(request))
    return JSON(await request.app.state.services.keys.mint(account_id, settings), status_code=201)


@router.get(
    "/accounts/{account_id}/keys",
    summary="List an account's active keys (never the secrets)",
    **documented(errors=BY_ID),
)
async def list_keys(request: Request, account_id: str) -> Response:
    await request.app.state.services.accounts.get(account_id)
    return JSON({"object": "list", "data": await request.app.state.services.keys.list(account_id)})


@router.delete("/keys/{key_id}", summary="Revoke a key", **documented(errors=BY_ID))
async def revoke_key(request: Request, key_id: str) -> Response:
    return JSON(await request.app.state.services.keys.revoke(key_id))
