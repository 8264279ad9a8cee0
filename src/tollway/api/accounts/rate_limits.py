"""Venice's rate-limit endpoints (DESIGN §5; seed-002 §10.8, §10.9): `GET api_keys/rate_limits` and
`GET api_keys/rate_limits/log` answer for the calling key, in Venice's shape. The failed-request
limiter (seed-002 §12.1) is middleware: api/middleware.py FailedRequests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import JSON
from tollway.api.spec import KEYED, documented
from tollway.core.caller import Caller

router = APIRouter(tags=["rate limits"])


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@router.get(
    "/api_keys/rate_limits",
    summary="The calling key's rate limits and balance (Venice shape)",
    **documented(errors=KEYED),
)
async def rate_limits(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    services = request.app.state.services
    assert who.account_id is not None
    account = await services.accounts.get(who.account_id)
    available = Decimal(account.balance_nano - account.reserved_nano) / 10**9
    gate = services.pipeline.rate_gate
    models = []
    for model in services.catalog.models.values():
        limits = gate.limits_for(who, model)
        amounts = [("RPM", limits.rpm), ("RPD", limits.rpd), ("TPM", limits.tpm)]
        models.append(
            {
                "apiModelId": model.id,
                "rateLimits": [{"amount": a, "type": t} for t, a in amounts if a is not None],
            }
        )
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    data: dict[str, Any] = {
        "accessPermitted": True,
        "apiTier": {"id": account.plan, "isCharged": True},
        "balances": {"USD": float(available)},
        "keyExpiration": _iso(who.expires_at) if who.expires_at else None,
        "nextEpochBegins": _iso(midnight),
        "rateLimits": models,
    }
    return JSON({"data": data})


@router.get(
    "/api_keys/rate_limits/log",
    summary="The account's last 50 rate-limited requests",
    **documented(errors=KEYED),
)
async def rate_limit_log(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    assert who.account_id is not None
    events = await request.app.state.services.limiter.events(who.account_id)
    return JSON({"data": events, "object": "list"})
