"""Authentication dependencies: who may call which family of routes."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import Headers, QueryParams

from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError
from tollway.telemetry import logs

FAILED_LIMIT_STATE = "failed_request_limit"  # request state: the key's own failed-request limit
# Where a key may come in the query string: Gemini's protocol puts it there (`?key=`). Anywhere
# else it would only end up in access logs, proxies and browser histories.
QUERY_KEY_PATHS = ("/v1beta/", "/api/v1beta/")
QUERY_KEY_REFUSED = (
    "API keys are not accepted in the URL (`?key=`) on this route: send the key in the "
    "'Authorization: Bearer <key>' header (`?key=` is for the Gemini routes, /v1beta/... only)."
)


def presented_key(headers: Headers, path: str, query: QueryParams) -> str | None:
    """The key a request presents: `Authorization: Bearer`, `x-api-key` (Anthropic), `x-goog-api-key`,
    or on the Gemini routes only `?key=`. A `?key=` anywhere else is a 401 saying to use the header."""
    in_query = query.get("key")
    if in_query is not None and not path.startswith(QUERY_KEY_PATHS):
        raise TollwayError(ErrorCode.AUTHENTICATION_FAILED, QUERY_KEY_REFUSED, param="key")
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or in_query


def raw_key(request: Request) -> str | None:
    return presented_key(request.headers, request.url.path, request.query_params)


async def caller(request: Request) -> Caller:
    who: Caller = await request.app.state.services.keys.authenticate(raw_key(request))
    logs.note(account_id=who.account_id, key_id=who.key_id)  # ids only: the access log
    if who.rate_limits and "failed_requests" in who.rate_limits:
        # The key's own failed-request limit, for api/middleware.py FailedRequests to count with.
        request.scope.setdefault("state", {})[FAILED_LIMIT_STATE] = who.rate_limits["failed_requests"]
    return who


async def inference_caller(request: Request) -> Caller:
    """Admin and inference keys may call models; the operator key only manages."""
    who = await caller(request)
    if who.is_operator:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "The operator key manages accounts; mint a key to call models."
        )
    return who


KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


async def optional_caller(request: Request) -> Caller | None:
    """For what Venice's document lets anyone read (the catalog): no key at all is an anonymous
    caller; a key, if sent, must be valid (401 otherwise) and selects its account's view."""
    if not any(h in request.headers for h in KEY_HEADERS) and "key" not in request.query_params:
        return None
    return await inference_caller(request)


async def operator_caller(request: Request) -> Caller:
    who = await caller(request)
    if not who.is_operator:
        raise TollwayError(ErrorCode.UNAUTHORIZED, "This route needs the operator key.")
    return who
