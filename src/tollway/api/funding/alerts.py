"""Low-balance alerts (issue 25, core/events/alerts.py): an account's admin-scope key sets a threshold
and a webhook URL, reads them back, or deletes them. Off (404) unless TOLLWAY_BALANCE_ALERTS is on.
The URL must pass the SSRF rules (a 400 naming `url`); the signing secret is in the PUT's answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.accounts.billing import account_admin_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, WRITES, documented
from tollway.core.caller import Caller
from tollway.core.events.alerts import Alerts
from tollway.core.inference.schemas import validate
from tollway.core.money.amounts import PositiveUsdAmount
from tollway.core.money.prices import usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["billing"])
DISABLED = (
    "Low-balance alerts are not enabled on this Tollway (the operator sets TOLLWAY_BALANCE_ALERTS=true)."
)


class AlertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold_usd: PositiveUsdAmount = Field(description="Alert when the balance falls below this (USD)")
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL on a public address")


def _alerts(request: Request) -> Alerts:
    alerts: Alerts | None = request.app.state.services.alerts
    if alerts is None:
        raise TollwayError(ErrorCode.NOT_FOUND, DISABLED)
    return alerts


def _account(who: Caller) -> str:
    assert who.account_id is not None
    return who.account_id


@router.put(
    "/billing/alerts",
    summary="Set the low-balance alert: a threshold and a signed webhook (admin-scope key)",
    **documented(body=AlertBody, errors=WRITES),
)
async def put_alert(request: Request, who: Caller = Depends(account_admin_caller)) -> Response:
    alerts = _alerts(request)
    body = validate(AlertBody, await read_json(request))
    alert = await alerts.put(_account(who), usd_to_nano(body.threshold_usd), body.url)
    return JSON(alert.view(with_secret=True), headers={"Cache-Control": "no-store"})


@router.get(
    "/billing/alerts",
    summary="The low-balance alert, if set (admin-scope key)",
    **documented(errors=BY_ID),
)
async def get_alert(request: Request, who: Caller = Depends(account_admin_caller)) -> Response:
    alert = await _alerts(request).get(_account(who))
    if alert is None:
        raise TollwayError(ErrorCode.NOT_FOUND, "No low-balance alert is set for this account.")
    return JSON(alert.view(with_secret=False))


@router.delete(
    "/billing/alerts",
    summary="Delete the low-balance alert (admin-scope key)",
    **documented(errors=BY_ID),
)
async def delete_alert(request: Request, who: Caller = Depends(account_admin_caller)) -> Response:
    if not await _alerts(request).delete(_account(who)):
        raise TollwayError(ErrorCode.NOT_FOUND, "No low-balance alert is set for this account.")
    return JSON({"object": "balance_alert", "deleted": True})
