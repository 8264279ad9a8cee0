"""The Anthropic surface: `POST /v1/messages` (and /api/v1), same pipeline as chat completions.

The body is translated to the internal OpenAI shape (dialects/anthropic/shapes.py), run through
`pipeline.chat` (so admission, limits, policy and billing are identical), and the result translated
back: a Message, or the Messages streaming events. Errors use Anthropic's shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.dialects.anthropic.shapes import request_to_openai, response_from_openai
from tollway.dialects.anthropic.stream import FromOpenAI
from tollway.dialects.openai import DONE, openai_chunks
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
ERROR_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_response(err: TollwayError, rid: str) -> JSON:
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(err.status, "invalid_request_error"), "message": err.message},
        "request_id": rid,
    }
    return JSON(body, status_code=err.status, headers=err.headers)


def _validated(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TollwayError(ErrorCode.VALIDATION, "The body must be a JSON object.")
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise TollwayError(
            ErrorCode.VALIDATION, "max_tokens: Field required (an integer).", param="max_tokens"
        )
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise TollwayError(ErrorCode.VALIDATION, "messages: a non-empty list is required.", param="messages")
    return body


async def _events(frames: AsyncIterator[bytes], model: str) -> AsyncIterator[bytes]:
    translate = FromOpenAI(model)
    async for chunk in openai_chunks(frames):
        if chunk is DONE:
            for event in translate.end():
                yield event
            return
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            status = ErrorCode[error["code"]].status if error.get("code") in ErrorCode.__members__ else 500
            yield translate.error(status, str(error.get("message") or "The upstream failed mid-stream."))
            return
        for event in translate.feed(chunk):
            yield event
    yield translate.error(502, "The stream ended before it was complete.")


@router.post("/messages", summary="Anthropic Messages (buffered, or streaming events)", tags=["anthropic"])
async def messages(request: Request) -> Response:
    rid = request_id(request)
    try:
        who = await inference_caller(request)
        return await once(request, who, "messages", lambda: _messages(request, who, rid))
    except TollwayError as err:
        return error_response(err, rid)


async def _messages(request: Request, who: Caller, rid: str) -> Response:
    body = _validated(await read_json(request))
    model = str(body.get("model") or "")
    result = await request.app.state.services.pipeline.chat(Call(rid, who, "chat"), request_to_openai(body))
    if result.frames is not None:
        return StreamingResponse(
            _events(result.frames, model),
            media_type="text/event-stream",
            headers={**result.headers, **SSE_HEADERS},
        )
    return JSON(response_from_openai(result.body or {}, model), headers=result.headers)
