"""The model catalog in Anthropic's and Gemini's shapes (their SDKs' `models.list()` and `.get()`).

Pure: the api layer passes each model as a `Listed`; pagination follows each API's own rules
(Anthropic's `before_id`/`after_id`/`limit` with `first_id`/`last_id`/`has_more`; Gemini's
`pageSize`/`pageToken` with `nextPageToken`, the token being the last listed model's id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GEMINI_METHODS = ["generateContent", "streamGenerateContent"]  # what /v1beta/models/{m}:… serves


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    display_name: str
    created: int  # Unix seconds
    description: str | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None


def anthropic_model(model: Listed) -> dict[str, Any]:
    created = datetime.fromtimestamp(model.created, UTC).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": model.id, "display_name": model.display_name, "created_at": created}


def anthropic_page(
    models: list[Listed], *, before_id: str | None, after_id: str | None, limit: int
) -> dict[str, Any] | None:
    """One page; None when `before_id`/`after_id` names no listed model."""
    ids = [m.id for m in models]
    start, end = 0, len(models)
    if after_id is not None:
        if after_id not in ids:
            return None
        start = ids.index(after_id) + 1
    if before_id is not None:
        if before_id not in ids:
            return None
        end = ids.index(before_id)
    window = models[start:end]
    page = window[-limit:] if before_id is not None and after_id is None else window[:limit]
    data = [anthropic_model(m) for m in page]
    return {
        "data": data,
        "has_more": len(page) < len(window),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def gemini_model(model: Listed) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"models/{model.id}",
        "baseModelId": model.id,
        "version": "001",
        "displayName": model.display_name,
        "supportedGenerationMethods": GEMINI_METHODS,
    }
    if model.description:
        body["description"] = model.description
    if model.context_length:
        body["inputTokenLimit"] = model.context_length
    if model.max_output_tokens:
        body["outputTokenLimit"] = model.max_output_tokens
    return body


def gemini_page(models: list[Listed], *, page_size: int, page_token: str | None) -> dict[str, Any] | None:
    """One page; None when `page_token` is not one this server gave."""
    ids = [m.id for m in models]
    start = 0
    if page_token:
        if page_token not in ids:
            return None
        start = ids.index(page_token) + 1
    page = models[start : start + page_size]
    body: dict[str, Any] = {"models": [gemini_model(m) for m in page]}
    if start + page_size < len(models):
        body["nextPageToken"] = page[-1].id
    return body
