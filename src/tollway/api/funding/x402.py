"""Venice's x402 routes (core/funding/x402.py): top up with a signed USDC authorization, read a wallet's
balance and transactions with a SIGN-IN-WITH-X header.

Off until the operator sets TOLLWAY_X402_PAY_TO, TOLLWAY_CHAIN_RPC_URL, TOLLWAY_USDC_CONTRACT and
TOLLWAY_X402_SETTLEMENT_KEY: then a 404 says x402 is not enabled. A refused top-up answers in the shape
Venice's document gives its x402 errors, `{"error": "<X402_CODE>", "message", "details": {"reason"}}`;
the read routes answer Venice's StandardError/DetailedError like the rest of /api/v1.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.responses import Response
from x402.http.utils import encode_payment_required_header, encode_payment_response_header
from x402.schemas import SettleResponse

from tollway.api.http import JSON
from tollway.api.spec import documented
from tollway.core.funding.x402 import X402, usd
from tollway.core.funding.x402_checks import X402Refusal, check_siwx
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["x402"])
DISABLED = (
    "x402 is not enabled on this Tollway (the operator sets TOLLWAY_X402_PAY_TO, TOLLWAY_CHAIN_RPC_URL, "
    "TOLLWAY_USDC_CONTRACT and TOLLWAY_X402_SETTLEMENT_KEY)."
)
PAYMENT_HEADERS = ("payment-signature", "x-402-payment", "x-payment")
SIWX_HEADERS = ("sign-in-with-x", "x-sign-in-with-x")
WalletPath = Annotated[str, Path(alias="walletAddress", description="An EVM (0x…) wallet address.")]
WALLET = re.compile(r"^(0x[a-fA-F0-9]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})$")


class X402Error(BaseModel):
    """Venice's x402 error: a machine-readable code, a message, the reason."""

    error: str
    message: str
    details: dict[str, Any] | None = None


class X402Accept(BaseModel):
    scheme: str
    network: str
    amount: str
    asset: str
    payTo: str
    maxTimeoutSeconds: int
    extra: dict[str, Any] | None = None


class X402PaymentRequiredError(BaseModel):
    """The 402 of a top-up without payment: the x402 v2 payment requirements."""

    x402Version: int
    accepts: list[X402Accept]


def _x402(request: Request) -> X402:
    service: X402 | None = request.app.state.services.x402
    if service is None:
        raise TollwayError(ErrorCode.NOT_FOUND, DISABLED)
    return service


def _top_up_docs() -> dict[str, Any]:
    docs = documented(errors=(404,))
    for status, meaning in (
        (400, "The payment is invalid"),
        (409, "This payment is being settled"),
        (502, "The chain did not settle it yet"),
    ):
        docs["responses"][status] = {"description": meaning, "model": X402Error}
    docs["responses"][402] = {
        "description": "Payment requirements (no payment header)",
        "model": X402PaymentRequiredError,
    }
    # Venice's document: no body is needed (an empty POST asks for the requirements); a JSON object is ignored.
    docs["openapi_extra"]["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "properties": {}}}},
    }
    return docs


@router.post(
    "/x402/top-up",
    summary="Top up a wallet's balance with an x402 v2 payment (no header: the payment requirements)",
    description="Send a `PAYMENT-SIGNATURE` header (or `X-402-Payment`, `X-PAYMENT`): a base64 x402 v2 "
    "PaymentPayload of the `exact` scheme (EIP-3009 transferWithAuthorization). Off unless configured (404).",
    **_top_up_docs(),
)
async def top_up(request: Request) -> Response:
    service = _x402(request)
    header = next((request.headers[name] for name in PAYMENT_HEADERS if request.headers.get(name)), None)
    if header is None:
        required = service.requirements(request.app.state.services.settings.x402_max_timeout_seconds)
        body = required.model_dump(by_alias=True, exclude_none=True)
        return JSON(
            body, status_code=402, headers={"PAYMENT-REQUIRED": encode_payment_required_header(required)}
        )
    try:
        done = await service.top_up(header)
    except X402Refusal as refusal:
        return JSON(
            {"error": refusal.code, "message": refusal.message, "details": {"reason": refusal.reason}},
            status_code=refusal.status,
        )
    settled = SettleResponse(
        success=True,
        transaction=done.tx_hash,
        network=done.network,
        payer=done.wallet,
        amount=str(done.amount_nano // 1000),
    )
    data = {
        "walletAddress": done.wallet,
        "amountCredited": usd(done.amount_nano),
        "newBalance": usd(done.balance_nano),
        "paymentId": done.payment_id,
    }
    return JSON(
        {"success": True, "data": data}, headers={"PAYMENT-RESPONSE": encode_payment_response_header(settled)}
    )


def _wallet(request: Request, wallet_address: str) -> str:
    """The path's wallet, proven by the SIGN-IN-WITH-X header: 400 malformed, 401 unproven, 403 another's."""
    settings = request.app.state.services.settings
    if not WALLET.match(wallet_address):
        raise TollwayError(
            ErrorCode.VALIDATION,
            "walletAddress must be an EVM (0x…) or Solana address.",
            param="walletAddress",
        )
    if not wallet_address.startswith("0x"):
        raise TollwayError(
            ErrorCode.VALIDATION, "Only EVM wallets are served by this Tollway.", param="walletAddress"
        )
    header = next((request.headers[name] for name in SIWX_HEADERS if request.headers.get(name)), None)
    if header is None:
        raise TollwayError(ErrorCode.AUTHENTICATION_FAILED, "Send a SIGN-IN-WITH-X header for this wallet.")
    domain = settings.x402_siwx_domain or request.headers.get("host", "")
    signer = check_siwx(header, domain=domain, chain_id=settings.chain_id)
    if signer != wallet_address.lower():
        raise TollwayError(ErrorCode.UNAUTHORIZED, "The signed-in wallet is not the requested wallet.")
    return signer


def _settings_usd(value: Any) -> float:
    return float(value)


@router.get(
    "/x402/balance/{walletAddress}",
    summary="A wallet's x402 balance (SIGN-IN-WITH-X)",
    **documented(errors=(400, 401, 403, 404)),
)
async def balance(request: Request, wallet_address: WalletPath) -> Response:
    service = _x402(request)
    wallet = _wallet(request, wallet_address)
    settings = request.app.state.services.settings
    found = await service.balance(wallet)
    data = {
        "walletAddress": wallet,
        "balanceUsd": usd(found["balance_nano"]),
        "canConsume": found["can_consume"],
        "minimumTopUpUsd": _settings_usd(settings.x402_min_top_up_usd),
        "suggestedTopUpUsd": _settings_usd(settings.x402_suggested_top_up_usd),
    }
    return JSON({"success": True, "data": data})


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise TollwayError(
            ErrorCode.VALIDATION, f"{name} must be an integer from {low} to {high}.", param=name
        )
    return value


@router.get(
    "/x402/transactions/{walletAddress}",
    summary="A wallet's x402 transactions, newest first (SIGN-IN-WITH-X)",
    **documented(errors=(400, 401, 403, 404)),
)
async def transactions(request: Request, wallet_address: WalletPath) -> Response:
    service = _x402(request)
    limit = _int(request, "limit", 50, 1, 100)
    offset = _int(request, "offset", 0, 0, 10_000_000)
    wallet = _wallet(request, wallet_address)
    current, page, more = await service.transactions(wallet, limit, offset)
    data = {
        "walletAddress": wallet,
        "currentBalance": usd(current),
        "transactions": page,
        "pagination": {"limit": limit, "offset": offset, "hasMore": more},
    }
    return JSON({"success": True, "data": data})
