"""What response storage needs of the Responses shapes, pure: the input as items with ids (what
GET /v1/responses/{id}/input_items lists), a conversation continued from a stored response, and a page
of input items."""

from __future__ import annotations

from typing import Any

from tollway.dialects.responses.shapes import new_id

JSON = dict[str, Any]
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


def _item(item: JSON) -> JSON:
    out = dict(item)
    kind = out.setdefault("type", "message")
    if kind == "message" and isinstance(out.get("content"), str):
        part = "output_text" if out.get("role") == "assistant" else "input_text"
        out["content"] = [{"type": part, "text": out["content"]}]
    out.setdefault("id", new_id(_PREFIX.get(kind, "item")))
    return out


def as_items(value: Any) -> list[JSON]:
    """`input` (a string or items) as items with their type and an id."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    return [_item(item) for item in value or ()]


def continued(previous: JSON, value: Any) -> list[JSON]:
    """The items of a request that continues `previous` ({"input", "response"}): what it was sent, what
    it answered (output items are valid input items), then the new input."""
    return [*previous["input"], *as_items(previous["response"].get("output")), *as_items(value)]


def page(items: list[JSON], order: str, limit: int, after: str | None) -> JSON:
    """A list page of input items, OpenAI's shape (`order` desc by default)."""
    ordered = list(reversed(items)) if order == "desc" else list(items)
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
