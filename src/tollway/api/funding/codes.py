"""Redemption code routes: the operator mints a batch, an account redeems a code (core/funding/codes.py).

Off unless TOLLWAY_REDEMPTION_CODES is on. A wrong code is a 404, which the failed-request limiter
(api/middleware.py) counts like any other non-success: guessing codes blocks the guessing key.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.accounts.billing import account_caller
from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import KEYED, WRITES, documented
from tollway.core.caller import Caller
from tollway.core.funding.codes import MAX_BATCH, Codes
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import PositiveUsdAmount
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError

admin_router = APIRouter(prefix="/admin", tags=["operator"], dependencies=[Depends(operator_caller)])
router = APIRouter(tags=["billing"])
DISABLED = (
    "Redemption codes are not enabled on this Tollway (the operator sets TOLLWAY_REDEMPTION_CODES=true)."
)


class Mint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: PositiveUsdAmount
    count: int = Field(ge=1, le=MAX_BATCH)
    expires_at: AwareDatetime | None = None
    account_id: str | None = Field(default=None, min_length=1, max_length=40)


class Redeem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=100)


def _codes(request: Request) -> Codes:
    codes: Codes | None = request.app.state.services.codes
    if codes is None:
        raise TollwayError(ErrorCode.NOT_FOUND, DISABLED)
    return codes


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@admin_router.post(
    "/redemption_codes",
    summary="Mint a batch of redemption codes (the plain codes are shown only in this response)",
    **documented(body=Mint, errors=(*WRITES,), status=201),
)
async def mint(request: Request) -> Response:
    codes = _codes(request)
    body = validate(Mint, await read_json(request))
    batch_id, minted = await codes.mint(
        usd_to_nano(body.amount_usd), body.count, expires_at=body.expires_at, account_id=body.account_id
    )
    return JSON(
        {
            "batch_id": batch_id,
            "amount_usd": body.amount_usd,
            "expires_at": _iso(body.expires_at),
            "account_id": body.account_id,
            "codes": [{"id": m.id, "code": m.code} for m in minted],
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/redemption_codes/redeem",
    summary="Redeem a code: credits this account once",
    **documented(body=Redeem, errors=(*KEYED, 404, 409, 415)),
)
async def redeem(request: Request, who: Caller = Depends(account_caller)) -> Response:
    codes = _codes(request)
    body = validate(Redeem, await read_json(request))
    assert who.account_id is not None
    done = await codes.redeem(who.account_id, body.code)
    balance, _ = await request.app.state.services.ledger.balances(who.account_id)
    return JSON(
        {
            "code_id": done.code_id,
            "credited_usd": nano_to_usd(done.amount_nano),
            "balance_usd": nano_to_usd(balance),
        }
    )
