"""The Anthropic surface: `POST /v1/messages` (and /api/v1), same pipeline as chat completions.

The body is translated to the internal OpenAI shape (dialects/anthropic/shapes.py), run through
`pipeline.chat` (so admission, limits, policy and billing are identical), and the result translated
back: a Message, or the Messages streaming events. Errors use Anthropic's shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.api.spec import JSON_OBJECT, PAID, SSE, documented
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.dialects.anthropic.errors import AnthropicError, error_body
from tollway.dialects.anthropic.request import MessagesRequest, checked_request
from tollway.dialects.anthropic.shapes import request_to_openai, response_from_openai
from tollway.dialects.anthropic.stream import events
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()


class LegacyCompleteRequest(BaseModel):
    """Anthropic's legacy Text Completions body, documented only to say it is refused."""

    model: str
    prompt: str
    max_tokens_to_sample: int


def error_response(err: TollwayError, rid: str) -> JSON:
    return JSON(error_body(err, rid), status_code=err.status, headers=err.headers)


@router.post(
    "/messages",
    summary="Anthropic Messages (buffered, or streaming events)",
    tags=["anthropic"],
    **documented(
        body=MessagesRequest,
        errors=PAID,
        envelope=AnthropicError,
        ok={"application/json": {"schema": JSON_OBJECT}, "text/event-stream": SSE},
    ),
)
async def messages(request: Request) -> Response:
    rid = request_id(request)
    try:
        who = await inference_caller(request)
        return await once(request, who, "messages", lambda: _messages(request, who, rid))
    except TollwayError as err:
        return error_response(err, rid)


async def _messages(request: Request, who: Caller, rid: str) -> Response:
    body = checked_request(await read_json(request))
    model = str(body.get("model") or "")
    result = await request.app.state.services.pipeline.chat(Call(rid, who, "chat"), request_to_openai(body))
    if result.frames is not None:
        return StreamingResponse(
            events(result.frames, model),
            media_type="text/event-stream",
            headers={**result.headers, **SSE_HEADERS},
        )
    return JSON(response_from_openai(result.body or {}, model), headers=result.headers)


@router.post(
    "/complete",
    summary="Anthropic's legacy Text Completions: not offered (use /v1/messages)",
    tags=["anthropic"],
    **documented(body=LegacyCompleteRequest, errors=(404,), envelope=AnthropicError),
)
async def complete(request: Request) -> Response:
    err = TollwayError(
        ErrorCode.NOT_FOUND,
        "This deployment does not offer Anthropic's legacy Text Completions API (/v1/complete): "
        "use the Messages API, POST /v1/messages.",
    )
    return error_response(err, request_id(request))
