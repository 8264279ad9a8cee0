"""The Responses surface: `POST /v1/responses` (and /api/v1), on the same pipeline as chat completions.

The body is checked and translated to the internal chat shape (dialects/responses/), run through
`pipeline.chat` (so admission, holds, limits, content tiers and exact settlement are chat's), and the
answer translated back: a Response object, or the typed streaming events. Responses are not stored:
what needs a stored one is a 400 RESPONSE_STORAGE_OFF. `POST /v1/responses/input_tokens` counts a
request's input with the tokenizer that sizes holds, for free.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.api.spec import KEYED, PAID, SSE, documented
from tollway.base import tokens
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.dialects.responses.request import (
    InputTokensRequest,
    ResponsesRequest,
    checked_count,
    checked_request,
)
from tollway.dialects.responses.shapes import request_to_chat, response_from_chat
from tollway.dialects.responses.stream import events
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
RESPONSE = {"application/json": {"schema": {"type": "object", "description": "A Response object."}}}


@router.post(
    "/responses",
    summary="OpenAI Responses (buffered, or typed SSE events with stream=true); stateless",
    tags=["inference"],
    **documented(body=ResponsesRequest, errors=PAID, ok={**RESPONSE, "text/event-stream": SSE}),
)
async def create_response(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await once(request, who, "responses", lambda: _create(request, who))


async def _create(request: Request, who: Caller) -> Response:
    body = checked_request(await read_json(request))
    chat = request_to_chat(body)
    model = str(body["model"])
    result = await request.app.state.services.pipeline.chat(Call(request_id(request), who, "chat"), chat)
    if result.frames is not None:
        return StreamingResponse(
            events(result.frames, body, model),
            media_type="text/event-stream",
            headers={**result.headers, **SSE_HEADERS},
        )
    return JSON(response_from_chat(result.body or {}, body, model), headers=result.headers)


@router.post(
    "/responses/input_tokens",
    summary="Count a Responses request's input tokens (free)",
    tags=["inference"],
    **documented(body=InputTokensRequest, errors=KEYED),
)
async def input_tokens(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = checked_count(await read_json(request))
    if body.get("model"):
        request.app.state.services.catalog.resolve(body["model"])  # 400 for a model it does not serve
    chat = request_to_chat({**body, "model": body.get("model") or "", "input": body.get("input") or []})
    return JSON({"object": "response.input_tokens", "input_tokens": tokens.count_prompt(chat)})


STATEFUL = documented(errors=KEYED)


def _storage_off() -> TollwayError:
    return TollwayError(ErrorCode.RESPONSE_STORAGE_OFF, param="response_id")


@router.get(
    "/responses/{response_id}", summary="A stored response (storage is off)", tags=["inference"], **STATEFUL
)
async def get_response(response_id: str, who: Caller = Depends(inference_caller)) -> Response:
    raise _storage_off()


@router.delete(
    "/responses/{response_id}",
    summary="Delete a stored response (storage is off)",
    tags=["inference"],
    **STATEFUL,
)
async def delete_response(response_id: str, who: Caller = Depends(inference_caller)) -> Response:
    raise _storage_off()


@router.get(
    "/responses/{response_id}/input_items",
    summary="A stored response's input items (storage is off)",
    tags=["inference"],
    **STATEFUL,
)
async def input_items(response_id: str, who: Caller = Depends(inference_caller)) -> Response:
    raise _storage_off()


@router.post(
    "/responses/{response_id}/cancel",
    summary="Cancel a background response (storage is off)",
    tags=["inference"],
    **STATEFUL,
)
async def cancel_response(response_id: str, who: Caller = Depends(inference_caller)) -> Response:
    raise _storage_off()
