"""The Gemini surface: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
`:countTokens`, `:embedContent` and `:batchEmbedContents` (also under /api/v1beta, as seed 004 serves
it). Same pipeline as chat completions and embeddings; counting is free.

Key in `x-goog-api-key` (what google-genai sends) or `?key=`; the access log never shows that
query value. Errors use Google's shape `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.api.spec import BY_ID, KEYED, PAID, SSE, documented
from tollway.core.caller import Caller
from tollway.core.catalog import view
from tollway.core.inference.pipeline import Call
from tollway.dialects import models as shapes
from tollway.dialects.gemini.embeddings import (
    count_request_to_openai,
    embed_request_to_openai,
    embed_response_from_openai,
)
from tollway.dialects.gemini.errors import GeminiError, error_body
from tollway.dialects.gemini.inbound import request_to_openai, response_from_openai
from tollway.dialects.gemini.request import GenerateContentRequest, checked_request
from tollway.dialects.gemini.stream import events
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
_ALT = Query(None, description="sse: streamGenerateContent as server-sent events")
_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents")
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


def error_response(err: TollwayError) -> JSON:
    return JSON(error_body(err.status, err.message, err.param), status_code=err.status, headers=err.headers)


async def _generate(request: Request, target: str) -> Response:
    rid = request_id(request)
    model, _, action = target.removeprefix("models/").rpartition(":")
    try:
        if action not in _ACTIONS or not model:
            raise TollwayError(ErrorCode.NOT_FOUND, f"Unknown method {action!r}: use {', '.join(_ACTIONS)}.")
        who = await inference_caller(request)
        if action == "countTokens":
            return await _count(request, who, rid, model)
        if action in ("embedContent", "batchEmbedContents"):
            endpoint = f"gemini:{model}:{action}"
            return await once(request, who, endpoint, lambda: _embed(request, who, rid, model, action))
        as_sse = request.query_params.get("alt") == "sse"
        endpoint = f"gemini:{model}:{action}:{'sse' if as_sse else 'json'}"  # what the body does not say
        return await once(request, who, endpoint, lambda: _run(request, who, rid, model, action, as_sse))
    except TollwayError as err:
        return error_response(err)


async def _count(request: Request, who: Caller, rid: str, model: str) -> Response:
    body = count_request_to_openai(await read_json(request), model)
    total = request.app.state.services.pipeline.count_tokens(Call(rid, who, "count_tokens"), body)
    return JSON({"totalTokens": total})


async def _embed(request: Request, who: Caller, rid: str, model: str, action: str) -> Response:
    """Charged as `/v1/embeddings` is: the same pipeline call, the same endpoint in the usage row."""
    batch = action == "batchEmbedContents"
    body = embed_request_to_openai(await read_json(request), model, batch=batch)
    result = await request.app.state.services.pipeline.embeddings(Call(rid, who, "embeddings"), body)
    return JSON(embed_response_from_openai(result.body or {}, batch=batch), headers=result.headers)


async def _run(request: Request, who: Caller, rid: str, model: str, action: str, as_sse: bool) -> Response:
    body = checked_request(await read_json(request))
    stream = action == "streamGenerateContent"
    result = await request.app.state.services.pipeline.chat(
        Call(rid, who, "chat"), request_to_openai(body, model, stream=stream)
    )
    if result.frames is not None:
        return StreamingResponse(
            events(result.frames, model, as_sse),
            media_type="text/event-stream" if as_sse else "application/json",
            headers={**result.headers, **SSE_HEADERS},
        )
    return JSON(response_from_openai(result.body or {}, model), headers=result.headers)


@router.post(
    "/v1beta/models/{target:path}",
    summary="Gemini generateContent / streamGenerateContent / countTokens / embedContent / batchEmbedContents",
    description="`target` is `MODEL:generateContent` or `MODEL:streamGenerateContent` (a JSON array, "
    "or server-sent events with `?alt=sse`); the body documented here is theirs. `MODEL:countTokens` takes "
    "`{contents}` or `{generateContentRequest}` and answers `{totalTokens}` (free: the tokenizer that sizes "
    "holds, no upstream call). `MODEL:embedContent` takes `{content, outputDimensionality?}` and answers "
    "`{embedding: {values}, usageMetadata}`; `MODEL:batchEmbedContents` takes `{requests: [...]}` and "
    "answers `{embeddings: [{values}], usageMetadata}`, charged as `/v1/embeddings`. `taskType` and `title` "
    "are refused (400): the embedding models served are OpenAI-shaped and cannot honour them. "
    "`usageMetadata.cost` is the USD charged.",
    tags=["gemini"],
    **documented(
        body=GenerateContentRequest,
        errors=PAID,
        charged=True,
        envelope=GeminiError,
        ok={"application/json": {"schema": {"type": ["object", "array"]}}, "text/event-stream": SSE},
    ),
)
async def generate(request: Request, target: str, alt: str | None = _ALT) -> Response:
    return await _generate(request, target)


@router.post("/api/v1beta/models/{target:path}", include_in_schema=False)
async def generate_api(request: Request, target: str) -> Response:
    return await _generate(request, target)


# -- models.list and models.get (google-genai) ------------------------------------------------------


async def _gemini_list(request: Request, page_size: int, page_token: str | None) -> Response:
    page = shapes.gemini_page(
        view.chat_models(request.app.state.services.catalog), page_size=page_size, page_token=page_token
    )
    if page is None:
        raise TollwayError(
            ErrorCode.VALIDATION, "`pageToken` is not one this server gave.", param="pageToken"
        )
    return JSON(page)


_PAGE_SIZE = Query(50, alias="pageSize", ge=1, le=1000)
_PAGE_TOKEN = Query(None, alias="pageToken")


@router.get(
    "/v1beta/models",
    summary="Gemini models.list: the chat models",
    tags=["gemini"],
    **documented(errors=KEYED, envelope=GeminiError),
)
async def gemini_list(
    request: Request,
    page_size: int = _PAGE_SIZE,
    page_token: str | None = _PAGE_TOKEN,
    who: Caller = Depends(inference_caller),
) -> Response:
    return await _gemini_list(request, page_size, page_token)


@router.get("/api/v1beta/models", include_in_schema=False)
async def gemini_list_api(
    request: Request,
    page_size: int = _PAGE_SIZE,
    page_token: str | None = _PAGE_TOKEN,
    who: Caller = Depends(inference_caller),
) -> Response:
    return await _gemini_list(request, page_size, page_token)


@router.get(
    "/v1beta/models/{model:path}",
    summary="Gemini models.get: one chat model",
    tags=["gemini"],
    **documented(errors=BY_ID, envelope=GeminiError),
)
async def gemini_get(request: Request, model: str, who: Caller = Depends(inference_caller)) -> Response:
    return JSON(
        shapes.gemini_model(
            view.chat_model(request.app.state.services.catalog, model.removeprefix("models/"))
        )
    )


@router.get("/api/v1beta/models/{model:path}", include_in_schema=False)
async def gemini_get_api(request: Request, model: str, who: Caller = Depends(inference_caller)) -> Response:
    return await gemini_get(request, model, who)
