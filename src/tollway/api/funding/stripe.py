"""Card top-up routes (core/funding/stripe_topups.py): start a Stripe Checkout, and Stripe's webhook.

Off (404 saying how to enable) until the operator sets TOLLWAY_STRIPE_SECRET_KEY,
TOLLWAY_STRIPE_WEBHOOK_SECRET and TOLLWAY_STRIPE_SUCCESS_URL. `POST /billing/top-up` takes any key of an
account (admin or inference, as the balance route does): paying money in is harmless to the account,
and the console's Top up acts with the signed-in key. The webhook has no key: the Stripe-Signature is
its authentication, checked before anything is read.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from tollway.api.accounts.billing import account_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import KEYED, documented
from tollway.core.caller import Caller
from tollway.core.funding.stripe_topups import StripeTopups
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import PositiveUsdAmount
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
DISABLED = (
    "Card top-ups are not enabled on this Tollway (the operator sets TOLLWAY_STRIPE_SECRET_KEY, "
    "TOLLWAY_STRIPE_WEBHOOK_SECRET and TOLLWAY_STRIPE_SUCCESS_URL)."
)


class TopUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: PositiveUsdAmount


class StripeEvent(BaseModel):
    """A Stripe event as Stripe signs it (only these fields are read; the rest is kept as sent)."""

    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    data: dict[str, object]


def _topups(request: Request) -> StripeTopups:
    topups: StripeTopups | None = request.app.state.services.stripe
    if topups is None:
        raise TollwayError(ErrorCode.NOT_FOUND, DISABLED)
    return topups


@router.post(
    "/billing/top-up",
    summary="Start a card top-up: a Stripe Checkout URL for this amount (credited once paid)",
    **documented(body=TopUpBody, errors=(*KEYED, 404, 415, 502), status=201),
)
async def top_up(request: Request, who: Caller = Depends(account_caller)) -> Response:
    topups = _topups(request)
    body = validate(TopUpBody, await read_json(request))
    assert who.account_id is not None
    made = await topups.create(who.account_id, usd_to_nano(body.amount_usd))
    return JSON(
        {
            "id": made.id,
            "session_id": made.session_id,
            "url": made.url,
            "amount_usd": nano_to_usd(made.amount_nano),
            "min_usd": nano_to_usd(topups.min_nano),
            "max_usd": nano_to_usd(topups.max_nano),
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/webhooks/stripe",
    summary="Stripe's webhook: a signed event credits a paid top-up once, debits a refund or dispute",
    **documented(body=StripeEvent, errors=(400, 404, 409)),
)
async def stripe_webhook(request: Request) -> Response:
    topups = _topups(request)
    applied = await topups.handle(await request.body(), request.headers.get("stripe-signature"))
    return JSON({"received": True, "event": applied.event_id, "outcome": applied.outcome})
