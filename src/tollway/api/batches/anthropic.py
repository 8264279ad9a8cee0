"""Anthropic Message Batches: `/messages/batches` create, retrieve, list, cancel, results. Also under /api/v1.

Thin, like api/batches.py: core/batches/ checks, stores and runs them (each request through the same
pipeline as `POST /v1/messages`), core/batches/anthropic.py shapes them. Errors are in Anthropic's
envelope (api/http.py: every path under /messages).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from tollway.api.auth import inference_caller
from tollway.api.batches.openai import batches_of
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, documented
from tollway.core.caller import Caller
from tollway.dialects.anthropic.errors import AnthropicError
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(tags=["anthropic"])
LIST_MAX = 1000


class MessageBatchRequest(BaseModel):
    custom_id: str
    params: dict[str, Any]  # a Messages request, as POST /v1/messages takes it (without `stream`)


class MessageBatchCreate(BaseModel):
    requests: list[MessageBatchRequest]


def _results_url(request: Request) -> str:
    """Where the SDK fetches results: this server, under the prefix the client used (/v1 or /api/v1)."""
    path = request.url.path
    root = path[: path.index("/messages/batches")]
    return f"{str(request.base_url).rstrip('/')}{root}/messages/batches/{{id}}/results"


def _account(who: Caller) -> str:
    assert who.account_id is not None  # inference_caller refuses the operator key
    return who.account_id


@router.post(
    "/messages/batches",
    summary="Create a Message Batch",
    **documented(body=MessageBatchCreate, errors=(*BY_ID, 413, 415), envelope=AnthropicError),
)
async def create_message_batch(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    batches = batches_of(request)
    batch_id = await batches.create_messages(who, await read_json(request))
    return JSON(await batches.message_batch(_account(who), batch_id, _results_url(request)))


@router.get(
    "/messages/batches",
    summary="List your Message Batches (newest first)",
    **documented(errors=KEYED, envelope=AnthropicError),
)
async def list_message_batches(
    request: Request,
    after_id: str | None = Query(None, description="the last id of the previous page"),
    before_id: str | None = Query(None, description="not supported: page forward with after_id"),
    limit: int = Query(20, description="1 to 1000"),
    who: Caller = Depends(inference_caller),
) -> Response:
    if before_id is not None:
        raise TollwayError(
            ErrorCode.VALIDATION, "Page with `after_id`; `before_id` is not supported.", param="before_id"
        )
    if not 1 <= limit <= LIST_MAX:
        raise TollwayError(ErrorCode.VALIDATION, f"`limit` is 1 to {LIST_MAX}.", param="limit")
    batches = batches_of(request)
    return JSON(await batches.message_batches(_account(who), after_id, limit, _results_url(request)))


@router.get(
    "/messages/batches/{batch_id}",
    summary="A Message Batch",
    **documented(errors=BY_ID, envelope=AnthropicError),
)
async def get_message_batch(
    request: Request, batch_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    return JSON(await batches_of(request).message_batch(_account(who), batch_id, _results_url(request)))


@router.post(
    "/messages/batches/{batch_id}/cancel",
    summary="Cancel a Message Batch",
    **documented(errors=(*BY_ID, 409), envelope=AnthropicError),
)
async def cancel_message_batch(
    request: Request, batch_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    batches = batches_of(request)
    await batches.cancel(who, batch_id, "anthropic")
    return JSON(await batches.message_batch(_account(who), batch_id, _results_url(request)))


@router.get(
    "/messages/batches/{batch_id}/results",
    summary="A Message Batch's results (JSONL; deleted after this download)",
    **documented(
        errors=BY_ID, envelope=AnthropicError, ok={"application/binary": {"schema": {"type": "string"}}}
    ),
)
async def message_batch_results(
    request: Request, batch_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    data = await batches_of(request).message_results(_account(who), batch_id)
    return Response(data, media_type="application/binary")
