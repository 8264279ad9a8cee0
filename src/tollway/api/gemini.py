"""The Gemini surface: `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`
(also under /api/v1beta, as seed 004 serves it). Same pipeline as chat completions.

Key in `x-goog-api-key` (what google-genai sends) or `?key=`; the access log never shows that
query value. Errors use Google's shape `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.dialects.gemini.shapes import request_to_openai, response_from_openai
from tollway.dialects.gemini.stream import FromOpenAI, sse
from tollway.dialects.openai import DONE, openai_chunks
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_KEY_IN_QUERY = re.compile(r"([?&]key=)[^&\s]*")


class RedactQueryKey(logging.Filter):
    """Access-log lines show `?key=…` (a Gemini client's key) as `key=REDACTED`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_IN_QUERY.sub(r"\1REDACTED", a) if isinstance(a, str) else a for a in record.args
            )
        return True


logging.getLogger("uvicorn.access").addFilter(RedactQueryKey())


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": STATUSES.get(status, "INVALID_ARGUMENT")}}


def error_response(err: TollwayError) -> JSON:
    return JSON(error_body(err.status, err.message), status_code=err.status, headers=err.headers)


async def _events(frames: AsyncIterator[bytes], model: str, as_sse: bool) -> AsyncIterator[bytes]:
    """`alt=sse`: one `data:` event per response; otherwise a JSON array streamed element by element."""
    translate = FromOpenAI(model)
    first = True

    def out(events: list[bytes]) -> list[bytes]:
        nonlocal first
        if as_sse:
            return events
        framed = []
        for event in events:
            item = event.removeprefix(b"data: ").rstrip()
            framed.append((b"[" if first else b",\r\n") + item)
            first = False
        return framed

    async for chunk in openai_chunks(frames):
        if chunk is DONE:
            for event in out(translate.end()):
                yield event
            if not as_sse:
                yield b"]" if not first else b"[]"
            return
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            status = ErrorCode[error["code"]].status if error.get("code") in ErrorCode.__members__ else 500
            message = str(error.get("message") or "The upstream failed mid-stream.")
            for event in out([sse(error_body(status, message))]):
                yield event
            if not as_sse:
                yield b"]"
            return
        for event in out(translate.feed(chunk)):
            yield event
    for event in out([sse(error_body(502, "The stream ended before it was complete."))]):
        yield event


async def _generate(request: Request, target: str) -> Response:
    rid = request_id(request)
    model, _, action = target.removeprefix("models/").rpartition(":")
    try:
        if action not in ("generateContent", "streamGenerateContent") or not model:
            raise TollwayError(
                ErrorCode.NOT_FOUND,
                f"Unknown method {action!r}: use generateContent or streamGenerateContent.",
            )
        who = await inference_caller(request)
        as_sse = request.query_params.get("alt") == "sse"
        endpoint = f"gemini:{model}:{action}:{'sse' if as_sse else 'json'}"  # what the body does not say
        return await once(request, who, endpoint, lambda: _run(request, who, rid, model, action, as_sse))
    except TollwayError as err:
        return error_response(err)


async def _run(request: Request, who: Caller, rid: str, model: str, action: str, as_sse: bool) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise TollwayError(ErrorCode.VALIDATION, "The body must be a JSON object.")
    stream = action == "streamGenerateContent"
    result = await request.app.state.services.pipeline.chat(
        Call(rid, who, "chat"), request_to_openai(body, model, stream=stream)
    )
    if result.frames is not None:
        return StreamingResponse(
            _events(result.frames, model, as_sse),
            media_type="text/event-stream" if as_sse else "application/json",
            headers={**result.headers, **SSE_HEADERS},
        )
    return JSON(response_from_openai(result.body or {}, model), headers=result.headers)


@router.post(
    "/v1beta/models/{target:path}", summary="Gemini generateContent / streamGenerateContent", tags=["gemini"]
)
async def generate(request: Request, target: str) -> Response:
    return await _generate(request, target)


@router.post("/api/v1beta/models/{target:path}", include_in_schema=False)
async def generate_api(request: Request, target: str) -> Response:
    return await _generate(request, target)
