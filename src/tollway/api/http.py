"""What every adapter shares: request ids, body reading, JSON responses, the error handlers.

The middleware that sets the request id is api/middleware.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from tollway.api.limits import parse_json
from tollway.core.inference.schemas import param_of
from tollway.dialects import task_api
from tollway.dialects.anthropic.errors import error_body as anthropic_error
from tollway.dialects.gemini.errors import error_body as gemini_error
from tollway.dialects.openai import openai_envelope
from tollway.dialects.venice import venice_error
from tollway.errors import ErrorCode, TollwayError


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


# The routes (under /v1 and /api/v1) whose errors are in seed 001's envelope: its task API, and its
# account routes. Anthropic's is /messages (and its batches), Gemini's everything under /v1beta; Venice's the
# rest of /api/v1; OpenAI's the rest of /v1.
TASK_ROUTES = ("/images/generate", "/images/status", "/videos/generate", "/videos/status")
ACCOUNT_ROUTES = ("/account/credits", "/account/calculate-cost")


# Anthropic's own routes; and any /v1 route called by the anthropic SDK, which always sends
# `anthropic-version` (GET /v1/models answers it in Anthropic's shape, an unserved route in its envelope).
ANTHROPIC_ROUTES = ("/messages", "/complete")
ANTHROPIC_HEADER = "anthropic-version"


def speaks_anthropic(headers: Mapping[str, str]) -> bool:
    return ANTHROPIC_HEADER in headers


def error_response(err: TollwayError, rid: str, path: str = "", *, anthropic: bool = False) -> JSON:
    """`err` in the envelope of the surface `path` belongs to (Anthropic's for a caller that speaks it,
    `anthropic`), so that an error raised before the route runs (the body limit, the failed-request
    limit, an unknown route or method, a crash) reads as the caller's."""
    body: Any
    status = err.status
    route = path.removeprefix("/api").removeprefix("/v1")
    if path.startswith(("/v1beta/", "/api/v1beta/")):
        body = gemini_error(status, err.message, err.param)
    elif route in ANTHROPIC_ROUTES or route.startswith("/messages/") or anthropic:  # and its batches
        body = anthropic_error(err, rid)
    elif route in TASK_ROUTES:
        body, status = task_api.task_error(err)
    elif route in ACCOUNT_ROUTES:
        body = task_api.account_error(err)
    elif path.startswith("/api/v1/"):
        body = venice_error(err, rid)
    else:
        body = openai_envelope(err, rid)
    return JSON(body, status_code=status, headers=err.headers)


async def read_json(request: Request) -> Any:
    """The body as JSON: 415 for another content type, 400 for bytes that are not JSON or break
    api/limits.py's bounds (413 for a body over the route's limit comes from api/middleware.py)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise TollwayError(ErrorCode.INVALID_CONTENT_TYPE)
    return parse_json(await request.body())


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install_error_handlers(app: FastAPI) -> None:
    async def on_tollway(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TollwayError)
        return _answer(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = param_of(tuple(p for p in first.get("loc", ()) if p not in ("body", "query", "path")))
        err = TollwayError(
            ErrorCode.VALIDATION, f"Invalid `{param}`: {first.get('msg', 'invalid')}.", param=param
        )
        return _answer(request, err)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = allowed_methods(app, request.scope)
            err = TollwayError(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; use {', '.join(allowed)}.",
                headers={"allow": ", ".join(allowed)},
            )
            return _answer(request, err)
        if exc.status_code == 404:  # no route: say so in the caller's envelope, never a bare 404
            return _answer(request, not_offered(request.method, request.url.path))
        return _answer(request, TollwayError(ErrorCode.VALIDATION))

    # An unexpected error is answered by api/middleware.py's RequestContext, not by a handler here:
    # Starlette re-raises after its 500 handler, and uvicorn would then drop the connection.
    app.add_exception_handler(TollwayError, on_tollway)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


def _answer(request: Request, err: TollwayError) -> JSON:
    return error_response(
        err, request_id(request), request.url.path, anthropic=speaks_anthropic(request.headers)
    )


def not_offered(method: str, path: str) -> TollwayError:
    return TollwayError(
        ErrorCode.NOT_FOUND,
        f"This deployment does not offer {method} {path[:200]}. GET /openapi.json lists the routes it serves.",
    )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this path. Starlette's own `Allow` names only the first route
    whose path matched, and several routes share a path (GET, POST and DELETE api_keys)."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]
