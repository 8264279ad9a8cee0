"""What every adapter shares: request ids, body reading, JSON responses, the error handlers.

The middleware that sets the request id is api/middleware.py."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tollway.core.inference.schemas import param_of
from tollway.dialects.openai import openai_envelope
from tollway.errors import ErrorCode, TollwayError

log = logging.getLogger("tollway.http")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


def error_response(err: TollwayError, rid: str) -> JSON:
    return JSON(openai_envelope(err, rid), status_code=err.status, headers=err.headers)


async def read_json(request: Request) -> Any:
    """The body as JSON: 415 for another content type, 400 for bytes that are not JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise TollwayError(ErrorCode.INVALID_CONTENT_TYPE)
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TollwayError(ErrorCode.VALIDATION, "The body is not valid JSON.") from None


def install_error_handlers(app: FastAPI) -> None:
    async def on_tollway(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TollwayError)
        return error_response(exc, request_id(request))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = param_of(tuple(p for p in first.get("loc", ()) if p not in ("body", "query", "path")))
        err = TollwayError(
            ErrorCode.VALIDATION, f"Invalid `{param}`: {first.get('msg', 'invalid')}.", param=param
        )
        return error_response(err, request_id(request))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(
            exc.status_code, ErrorCode.VALIDATION
        )
        return error_response(TollwayError(code), request_id(request))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": request_id(request)})
        return error_response(TollwayError(ErrorCode.INTERNAL), request_id(request))

    app.add_exception_handler(TollwayError, on_tollway)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
