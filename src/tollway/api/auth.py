"""Authentication dependencies: who may call which family of routes."""

from __future__ import annotations

from fastapi import Request

from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError
from tollway.telemetry import logs


def raw_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer`, `x-api-key` (Anthropic), `x-goog-api-key` or `?key=` (Gemini)."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return (
        request.headers.get("x-api-key")
        or request.headers.get("x-goog-api-key")
        or request.query_params.get("key")
    )


async def caller(request: Request) -> Caller:
    who: Caller = await request.app.state.services.keys.authenticate(raw_key(request))
    logs.note(account_id=who.account_id, key_id=who.key_id)  # ids only: the access log
    return who


async def inference_caller(request: Request) -> Caller:
    """Admin and inference keys may call models; the operator key only manages."""
    who = await caller(request)
    if who.is_operator:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "The operator key manages accounts; mint a key to call models."
        )
    return who


async def operator_caller(request: Request) -> Caller:
    who = await caller(request)
    if not who.is_operator:
        raise TollwayError(ErrorCode.UNAUTHORIZED, "This route needs the operator key.")
    return who
