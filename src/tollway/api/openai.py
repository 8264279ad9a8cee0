"""The OpenAI surface: chat completions, embeddings, legacy completions and moderations
(core/inference/legacy.py), models. Also served under /api/v1."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from tollway.api import anthropic
from tollway.api.auth import inference_caller, optional_caller
from tollway.api.http import JSON, read_json, request_id, speaks_anthropic
from tollway.api.idempotent import once
from tollway.api.spec import BY_ID, JSON_OBJECT, KEYED, PAID, SSE, documented
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import LISTED_TYPES, CatalogModel
from tollway.core.catalog.view import VENICE_KNOWN, model_object
from tollway.core.inference import legacy
from tollway.core.inference.pipeline import Call, Result
from tollway.core.inference.schemas import (
    ChatRequest,
    CompletionRequest,
    EmbeddingsRequest,
    ModerationRequest,
)
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()


CHAT_ANSWER = {"application/json": {"schema": JSON_OBJECT}, "text/event-stream": SSE}


def _render(result: Result) -> Response:
    if result.frames is not None:
        return StreamingResponse(
            result.frames, media_type="text/event-stream", headers={**result.headers, **SSE_HEADERS}
        )
    return JSON(result.body, headers=result.headers)


async def rendered(result: Awaitable[Result]) -> Response:
    return _render(await result)


@router.post(
    "/chat/completions",
    summary="Chat completion (buffered, or SSE with stream=true)",
    tags=["inference"],
    **documented(body=ChatRequest, errors=PAID, ok=CHAT_ANSWER, charged=True),
)
async def chat_completions(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = await read_json(request)
    call = Call(request_id(request), who, "chat")
    pipeline = request.app.state.services.pipeline
    return await once(request, who, "chat", lambda: rendered(pipeline.chat(call, body)))


@router.post(
    "/embeddings",
    summary="Embeddings",
    tags=["inference"],
    **documented(body=EmbeddingsRequest, errors=PAID, charged=True),
)
async def embeddings(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = await read_json(request)
    call = Call(request_id(request), who, "embeddings")
    pipeline = request.app.state.services.pipeline
    return await once(request, who, "embeddings", lambda: rendered(pipeline.embeddings(call, body)))


@router.post(
    "/completions",
    summary="Legacy completion of a raw prompt (buffered, or SSE with stream=true)",
    description="Served by models whose engine continues a raw prompt: the embedded models, and "
    "OpenAI-compatible upstreams whose catalog entry lists the `completions` capability. A chat-only "
    "model answers 400 `UNSUPPORTED_CAPABILITY`.",
    tags=["inference"],
    **documented(body=CompletionRequest, errors=PAID, ok=CHAT_ANSWER),
)
async def completions(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = await read_json(request)
    call = Call(request_id(request), who, "completions")
    pipeline = request.app.state.services.pipeline
    return await once(request, who, "completions", lambda: rendered(legacy.complete(pipeline, call, body)))


@router.post(
    "/moderations",
    summary="Moderation scores from an upstream moderation model",
    description="404 when the deployment configures no model of type `moderation`: scores are never made up.",
    tags=["inference"],
    **documented(body=ModerationRequest, errors=PAID),
)
async def moderations(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    body = await read_json(request)
    call = Call(request_id(request), who, "moderations")
    pipeline = request.app.state.services.pipeline
    return await once(request, who, "moderations", lambda: rendered(legacy.moderate(pipeline, call, body)))


@router.get(
    "/models",
    summary="The model catalog (OpenAI list shape, Venice `type` filter)",
    description="With an `anthropic-version` header (the anthropic SDK's), Anthropic's shape instead: "
    "the chat models, paged by `before_id` / `after_id` / `limit`, with `has_more`, `first_id`, `last_id`.",
    tags=["models"],
    **documented(errors=KEYED),
)
async def list_models(
    request: Request,
    type: str = Query(
        "all",
        description="text | embedding | image | tts | stt (asr) | video | music | upscale | inpaint | code | all",
    ),
    who: Caller | None = Depends(optional_caller),
) -> Response:
    if speaks_anthropic(request.headers):
        return anthropic.anthropic_list(request)
    if type not in LISTED_TYPES:
        raise TollwayError(ErrorCode.VALIDATION, f"Unknown type {type!r}.", param="type")
    catalog = request.app.state.services.catalog
    models = catalog.of_type(type)
    if request.url.path.startswith("/api/") and type == "all":
        models = [m for m in models if m.type in VENICE_KNOWN]
    data = [_model(request, m) for m in models]
    return JSON({"object": "list", "type": type, "data": data})


@router.get("/models/{model_id}", summary="One model", tags=["models"], **documented(errors=BY_ID))
async def get_model(
    request: Request, model_id: str, who: Caller | None = Depends(optional_caller)
) -> Response:
    if speaks_anthropic(request.headers):
        return anthropic.anthropic_get(request, model_id)
    return JSON(_model(request, request.app.state.services.catalog.resolve(model_id)))


def _model(request: Request, model: CatalogModel) -> dict[str, Any]:
    """The model object; under /api/v1 with the values Venice's document pins (`owned_by`, `asr`)."""
    private = request.app.state.services.catalog.private(model)
    return model_object(model, private=private, venice=request.url.path.startswith("/api/"))
