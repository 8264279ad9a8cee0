"""`GET /v1/deposit-address` (issue 25, NightVeil's route): the calling account's own USDC address.

Off (404 naming the settings) until the operator sets TOLLWAY_DEPOSIT_XPUB and the rest
(core/funding/deposits.py). Any key of an account may ask (as for the balance): the address only
receives money. The first call allocates the account's index; every later one answers the same
address. Nothing is charged.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.accounts.billing import account_caller
from tollway.api.http import JSON
from tollway.api.spec import documented
from tollway.core.caller import Caller
from tollway.core.funding.deposits import Deposits, units_to_nano
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
DISABLED = (
    "Deposits (USDC on Base) are not enabled on this Tollway: the operator sets TOLLWAY_DEPOSIT_XPUB, "
    "TOLLWAY_USDC_CONTRACT, TOLLWAY_CHAIN_RPC_URL, TOLLWAY_DEPOSIT_CONFIRMATIONS and "
    "TOLLWAY_DEPOSIT_MIN_USD to enable them. Until then, ask the operator to credit your account "
    "(POST /v1/admin/accounts/{id}/credits)."
)


def _deposits(request: Request) -> Deposits:
    deposits: Deposits | None = request.app.state.services.deposits
    if deposits is None:
        raise TollwayError(ErrorCode.NOT_FOUND, DISABLED)
    return deposits


@router.get(
    "/deposit-address",
    summary="This account's own USDC deposit address (credited after on-chain confirmation)",
    **documented(errors=(401, 403, 404)),
)
async def deposit_address(request: Request, who: Caller = Depends(account_caller)) -> Response:
    deposits = _deposits(request)
    assert who.account_id is not None
    found = await deposits.addresses.address_of(who.account_id)
    terms = deposits.watcher.terms
    return JSON(
        {
            "object": "deposit_address",
            "address": found.address,
            "asset": "USDC",
            "network": "base" if deposits.chain_id == 8453 else f"eip155:{deposits.chain_id}",
            "chain_id": deposits.chain_id,
            "token_contract": terms.contract,
            "decimals": 6,
            "confirmations": terms.confirmations,
            "min_deposit_usd": nano_to_usd(units_to_nano(terms.min_units)),
        }
    )
