"""Venice's rate-limit endpoints, and the failed-request limiter (DESIGN §5; seed-002 §10.8, §10.9, §12.1).

`GET api_keys/rate_limits` and `GET api_keys/rate_limits/log` answer for the calling key, in Venice's
shape. `FailedRequests` is pure ASGI middleware: it sees every response status, including errors
rendered by the exception handlers, and streams pass through untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, error_response
from tollway.core.caller import Caller
from tollway.core.limits.gate import retry_headers
from tollway.core.limits.limiter import FAILED_MESSAGE
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["rate limits"])
# 402 is not counted: Venice has no 402 (seed-002 §13), the SDKs never retry it, and blocking a
# customer who just ran out of credit would make their first call after a top-up fail.
NOT_COUNTED = frozenset({402})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@router.get("/api_keys/rate_limits", summary="The calling key's rate limits and balance (Venice shape)")
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


@router.get("/api_keys/rate_limits/log", summary="The account's last 50 rate-limited requests")
async def rate_limit_log(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    assert who.account_id is not None
    events = await request.app.state.services.limiter.events(who.account_id)
    return JSON({"data": events, "object": "list"})


def _raw_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return headers.get("x-api-key") or headers.get("x-goog-api-key")


class FailedRequests:
    """More than 20 non-2xx responses for one key in 30 s → 429 with Venice's message, for 30 s.

    Keyed by the HMAC of the presented credential, so a client hammering with a bad key is limited
    too. The limiter's own 429s are not counted: the block ends 30 s after it started.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        raw = _raw_key(Headers(scope=scope)) if path.startswith(("/v1/", "/api/v1/")) else None
        if services is None or not raw or len(raw) > 256:
            await self.app(scope, receive, send)
            return
        subject = services.keys.hash(raw)[:32]
        limiter = services.limiter
        blocked = await limiter.blocked_for(subject)
        if blocked > 0:
            err = TollwayError(ErrorCode.RATE_LIMITED, FAILED_MESSAGE, headers=retry_headers(blocked))
            rid = str(scope.get("state", {}).get("request_id") or "")
            await error_response(err, rid)(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            await limiter.record_failure(subject)  # rendered as 500 further out
            raise
        if status >= 400 and status not in NOT_COUNTED:
            await limiter.record_failure(subject)
