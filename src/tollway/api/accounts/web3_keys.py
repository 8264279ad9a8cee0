"""Venice web3 key creation (`GET/POST api_keys/generate_web3_key`) and the operator's wallet bindings.

Off by default (404); the operator sets TOLLWAY_WEB3_KEYS=true and binds addresses to accounts with
`POST admin/accounts/{id}/wallets`. The key minted is always an INFERENCE key of the bound account.
Include this router before venice_keys: `api_keys/generate_web3_key` must win over `api_keys/{id}`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from tollway.api.accounts.venice_keys import (
    VCU_IGNORED,
    VeniceLimit,
    expiry_form,
    key_settings,
    vcu_ignored,
    venice_created,
)
from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.limits import parse_json
from tollway.api.spec import WRITES, documented
from tollway.core.access.web3 import Wallets, issue_token, normalize_address, recover_signer, verify_token
from tollway.core.catalog.privacy import ModelPrivacy
from tollway.core.inference.schemas import validate
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["venice keys"])
admin_router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])


def _address(value: str) -> str:
    return normalize_address(value)


class Web3NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiKeyType: Literal["INFERENCE", "ADMIN"]
    address: str
    signature: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=2000)
    consumptionLimit: VeniceLimit | None = None
    description: str = Field(default="Web3 API Key", min_length=1, max_length=200)
    expiresAt: str | None = None
    modelPrivacy: ModelPrivacy = "ALL"

    _check_address = field_validator("address")(_address)
    _check_expiry = field_validator("expiresAt")(expiry_form)


class WalletBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str

    _check_address = field_validator("address")(_address)


def _enabled(request: Request) -> None:
    if not request.app.state.services.settings.web3_keys:
        raise TollwayError(ErrorCode.NOT_FOUND, "Web3 key creation is not enabled on this server.")


async def _body(request: Request) -> Any:
    """JSON, with or without a content type: Venice's own example POSTs without one."""
    if request.headers.get("content-type"):
        return await read_json(request)
    return parse_json(await request.body())


@router.get(
    "/api_keys/generate_web3_key",
    summary="A short-lived token for a wallet to sign (no auth)",
    **documented(errors=(404,)),
)
async def web3_token(request: Request) -> Response:
    _enabled(request)
    token = issue_token(request.app.state.services.settings.pepper())
    return JSON({"data": {"token": token}, "success": True})


@router.post(
    "/api_keys/generate_web3_key",
    summary="Mint an inference key with a wallet signature (no auth)",
    description="Off unless the operator sets TOLLWAY_WEB3_KEYS=true (404). The body may come without "
    "a Content-Type, as Venice's example sends it.",
    **documented(body=Web3NewKey, errors=(400, 401, 403, 404, 415)),
)
async def web3_key(request: Request) -> Response:
    _enabled(request)
    services = request.app.state.services
    body = validate(Web3NewKey, await _body(request))
    if body.apiKeyType != "INFERENCE":
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "Web3 key creation mints INFERENCE keys only.", param="apiKeyType"
        )
    pepper = services.settings.pepper()
    nonce = verify_token(pepper, body.token)
    if recover_signer(body.token, body.signature) != body.address:
        raise TollwayError(
            ErrorCode.AUTHENTICATION_FAILED, "The signature is not by `address`.", param="signature"
        )
    wallets = Wallets(services.engine)
    account_id = await wallets.account_of(body.address)
    if account_id is None:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED,
            "This wallet is not bound to an account; ask the operator.",
            param="address",
        )
    settings = key_settings(
        "INFERENCE", body.description, body.consumptionLimit, body.expiresAt, privacy=body.modelPrivacy
    )
    await wallets.use_nonce(nonce)
    key = await services.keys.mint(account_id, settings, actor=f"web3:{body.address}")
    warning = {"warning": VCU_IGNORED} if vcu_ignored(body.consumptionLimit) else None
    return JSON(venice_created(key), headers=warning)


@admin_router.post(
    "/accounts/{account_id}/wallets",
    summary="Bind a wallet address to an account",
    **documented(body=WalletBinding, errors=(*WRITES, 409), status=201),
)
async def bind_wallet(request: Request, account_id: str) -> Response:
    body = validate(WalletBinding, await read_json(request))
    binding = await Wallets(request.app.state.services.engine).bind(account_id, body.address)
    return JSON(binding, status_code=201)
