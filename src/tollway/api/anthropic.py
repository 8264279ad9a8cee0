"""The Anthropic surface: `POST /v1/messages` and `/v1/messages/count_tokens` (and /api/v1), same
pipeline as chat completions.

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
from tollway.api.spec import COUNTING, JSON_OBJECT, PAID, SSE, documented
from tollway.core.caller import Caller
from tollway.core.catalog import view
from tollway.core.inference.pipeline import Call
from tollway.dialects import models as shapes
from tollway.dialects.anthropic.errors import AnthropicError, error_body
from tollway.dialects.anthropic.inbound import request_to_openai, response_from_openai
from tollway.dialects.anthropic.request import CountTokensRequest, MessagesRequest, checked_request
from tollway.dialects.anthropic.stream import events
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
ANTHROPIC_LIMIT_MAX = 1000


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
        charged=True,
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


# -- GET /v1/models in Anthropic's shape (api/openai.py hands over a request with `anthropic-version`) --


def anthropic_list(request: Request) -> Response:
    query = request.query_params
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= ANTHROPIC_LIMIT_MAX:
        raise TollwayError(
            ErrorCode.VALIDATION, f"`limit` must be 1 to {ANTHROPIC_LIMIT_MAX}.", param="limit"
        )
    page = shapes.anthropic_page(
        view.chat_models(request.app.state.services.catalog),
        before_id=query.get("before_id"),
        after_id=query.get("after_id"),
        limit=int(raw_limit),
    )
    if page is None:
        raise TollwayError(
            ErrorCode.VALIDATION, "`before_id` / `after_id` names no listed model.", param="after_id"
        )
    return JSON(page)


def anthropic_get(request: Request, model_id: str) -> Response:
    return JSON(shapes.anthropic_model(view.chat_model(request.app.state.services.catalog, model_id)))


@router.post(
    "/messages/count_tokens",
    summary='Anthropic token counting (free): `{"input_tokens": N}`',
    description="The prompt tokens of a Messages request, counted by the tokenizer that sizes holds "
    "(o200k_base, with the catalog's system prompt and the per-message overhead). Costs nothing and calls "
    "no upstream; needs a key that may call the model.",
    tags=["anthropic"],
    **documented(body=CountTokensRequest, errors=COUNTING, envelope=AnthropicError),
)
async def count_tokens(request: Request) -> Response:
    rid = request_id(request)
    try:
        who = await inference_caller(request)
        body = checked_request(await read_json(request), CountTokensRequest)
        pipeline = request.app.state.services.pipeline
        body = {k: v for k, v in body.items() if k != "stream"}
        return JSON(
            {"input_tokens": pipeline.count_tokens(Call(rid, who, "count_tokens"), request_to_openai(body))}
        )
    except TollwayError as err:
        return error_response(err, rid)
