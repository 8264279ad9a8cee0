"""OpenAI's legacy completions and moderations (core/inference/legacy.py). Also served under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.http import read_json, request_id
from tollway.api.idempotent import once
from tollway.api.openai import CHAT_ANSWER, rendered
from tollway.api.spec import PAID, documented
from tollway.core.caller import Caller
from tollway.core.inference import legacy
from tollway.core.inference.pipeline import Call
from tollway.core.inference.schemas import CompletionRequest, ModerationRequest

router = APIRouter()


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
