"""The Responses surface: `POST /v1/responses` (and /api/v1), on the same pipeline as chat completions.

The body is checked and translated to the internal chat shape (dialects/responses/), run through
`pipeline.chat` (so admission, holds, limits, content tiers and exact settlement are chat's), and the
answer translated back: a Response object, or the typed streaming events. Response storage
(core/inference/responses/stored.py) is off unless the operator sets a TTL: then `store` (default true)
keeps a response for its account, `previous_response_id` continues one, and GET/DELETE work; another
account's id is 404. Off, they are 400 RESPONSE_STORAGE_OFF. `POST /v1/responses/input_tokens` counts a
request's input with the tokenizer that sizes holds, for free.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from tollway.api.auth import inference_caller
from tollway.api.http import JSON, read_json, request_id
from tollway.api.idempotent import once
from tollway.api.spec import BY_ID, PAID, SSE, WRITES, documented
from tollway.base import tokens
from tollway.core.caller import Caller
from tollway.core.inference.pipeline import Call
from tollway.core.inference.responses import native
from tollway.core.inference.responses.stored import ResponseStore
from tollway.dialects.responses import state
from tollway.dialects.responses.request import (
    InputTokensRequest,
    ResponsesRequest,
    checked_count,
    checked_request,
)
from tollway.dialects.responses.shapes import request_to_chat, response_from_chat, responses_param
from tollway.dialects.responses.stream import events
from tollway.dialects.sse import SSE_HEADERS
from tollway.errors import ErrorCode, TollwayError

router = APIRouter()
RESPONSE = {"application/json": {"schema": {"type": "object", "description": "A Response object."}}}
Body = dict[str, Any]


def _store(request: Request) -> ResponseStore | None:
    store: ResponseStore | None = request.app.state.services.responses
    return store


@router.post(
    "/responses",
    summary="OpenAI Responses (buffered, or typed SSE events with stream=true)",
    tags=["inference"],
    **documented(body=ResponsesRequest, errors=PAID, ok={**RESPONSE, "text/event-stream": SSE}),
)
async def create_response(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    return await once(request, who, "responses", lambda: _create(request, who))


async def _continued(store: ResponseStore | None, who: Caller, body: Body) -> Body:
    """With storage on: `store` defaults to true, and `input` carries the previous response's items."""
    if store is None:
        _no_references(body)
        return body
    body = {**body, "store": body.get("store") is not False}
    previous_id = body.get("previous_response_id")
    if previous_id:
        previous = await store.load(str(who.account_id), previous_id)
        if previous is None:
            raise TollwayError(
                ErrorCode.NOT_FOUND,
                f"No response {previous_id!r} (or it expired).",
                param="previous_response_id",
            )
        body["input"] = state.continued(previous, body.get("input"))
    return await _referenced(store, who, body)


async def _referenced(store: ResponseStore, who: Caller, body: Body) -> Body:
    """`item_reference` input items replaced by the stored items they name (this account's only)."""
    items = body.get("input")
    if not isinstance(items, list) or not any(_is_reference(item) for item in items):
        return body
    resolved = []
    for index, item in enumerate(items):
        if not _is_reference(item):
            resolved.append(item)
            continue
        found = await store.find_item(str(who.account_id), str(item.get("id") or ""))
        if found is None:
            raise TollwayError(
                ErrorCode.NOT_FOUND,
                f"No stored item {item.get('id')!r} (or its response expired).",
                param=f"input.{index}.id",
            )
        resolved.append(found)
    return {**body, "input": resolved}


def _is_reference(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "item_reference"


def _no_references(body: Body) -> None:
    """With storage off an `item_reference` has nothing to name: a 400 that says so."""
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if _is_reference(item):
            raise TollwayError(
                ErrorCode.RESPONSE_STORAGE_OFF,
                "Response storage is off on this deployment, so an `item_reference` names no kept item: "
                "send the item itself.",
                param=f"input.{index}",
            )


async def _create(request: Request, who: Caller) -> Response:
    store = _store(request)
    body = await _continued(store, who, checked_request(await read_json(request)))
    chat = request_to_chat(body, storage=store is not None)
    model = str(body["model"])
    items = state.as_items(body.get("input")) if store is not None and body["store"] else None

    async def keep(response: Body) -> None:
        response["store"] = items is not None
        if store is not None and items is not None:
            await store.save(str(who.account_id), response["id"], items, response)

    pipeline = request.app.state.services.pipeline
    call = Call(request_id(request), who, "chat")
    try:
        resolved = native.native_model(pipeline.catalog, model)
        if resolved is not None:  # passed through as is (providers/openai/responses.py)
            native_result = await native.respond(pipeline, call, body, chat, resolved, keep)
            if native_result.frames is None:
                return JSON(native_result.body, headers=native_result.headers)
            return StreamingResponse(
                native_result.frames,
                media_type="text/event-stream",
                headers={**native_result.headers, **SSE_HEADERS},
            )
        result = await pipeline.chat(call, chat)
    except TollwayError as err:
        raise responses_param(err) from None

    if result.frames is not None:
        return StreamingResponse(
            events(result.frames, body, model, on_done=keep),
            media_type="text/event-stream",
            headers={**result.headers, **SSE_HEADERS},
        )
    response = response_from_chat(result.body or {}, body, model)
    await keep(response)  # after the charge: a failure here is a 500, the answer paid for is lost
    return JSON(response, headers=result.headers)


@router.post(
    "/responses/input_tokens",
    summary="Count a Responses request's input tokens (free)",
    tags=["inference"],
    **documented(body=InputTokensRequest, errors=WRITES),
)
async def input_tokens(request: Request, who: Caller = Depends(inference_caller)) -> Response:
    store = _store(request)
    body = checked_count(await read_json(request))
    if body.get("model"):
        request.app.state.services.catalog.resolve(body["model"])  # 400 for a model it does not serve
    body = await _continued(
        store, who, {**body, "model": body.get("model") or "", "input": body.get("input") or []}
    )
    chat = request_to_chat({**body, "store": None}, storage=store is not None)
    return JSON({"object": "response.input_tokens", "input_tokens": tokens.count_prompt(chat)})


STATEFUL = documented(errors=BY_ID)


async def _stored(request: Request, who: Caller, response_id: str) -> Body:
    store = _store(request)
    if store is None:
        raise TollwayError(ErrorCode.RESPONSE_STORAGE_OFF, param="response_id")
    found = await store.load(str(who.account_id), response_id)
    if found is None:
        raise TollwayError(ErrorCode.NOT_FOUND, f"No response {response_id!r} (or it expired).")
    return found


@router.get("/responses/{response_id}", summary="A stored response", tags=["inference"], **STATEFUL)
async def get_response(
    request: Request, response_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    return JSON((await _stored(request, who, response_id))["response"])


@router.delete("/responses/{response_id}", summary="Delete a stored response", tags=["inference"], **STATEFUL)
async def delete_response(
    request: Request, response_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    store = _store(request)
    if store is None:
        raise TollwayError(ErrorCode.RESPONSE_STORAGE_OFF, param="response_id")
    if not await store.delete(str(who.account_id), response_id):
        raise TollwayError(ErrorCode.NOT_FOUND, f"No response {response_id!r} (or it expired).")
    return JSON({"id": response_id, "object": "response", "deleted": True})


@router.get(
    "/responses/{response_id}/input_items",
    summary="A stored response's input items",
    tags=["inference"],
    **STATEFUL,
)
async def input_items(
    request: Request,
    response_id: str,
    order: str = Query("desc", pattern="^(asc|desc)$"),
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None),
    who: Caller = Depends(inference_caller),
) -> Response:
    found = await _stored(request, who, response_id)
    return JSON(state.page(found["input"], order, limit, after))


@router.post(
    "/responses/{response_id}/cancel",
    summary="Cancel a background response (none are run: always a 400)",
    tags=["inference"],
    **STATEFUL,
)
async def cancel_response(
    request: Request, response_id: str, who: Caller = Depends(inference_caller)
) -> Response:
    await _stored(request, who, response_id)
    raise TollwayError(
        ErrorCode.VALIDATION, "Only background responses can be cancelled; this deployment runs none."
    )
