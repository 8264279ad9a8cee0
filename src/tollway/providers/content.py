"""Small pure helpers over OpenAI message content, shared by the Anthropic and Gemini translations."""

from __future__ import annotations

import re
from typing import Any

import orjson

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)


def data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,XXX` → ("image/png", "XXX"); anything else → None."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group("mime") or "application/octet-stream", match.group("data")


def to_data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (a string, parts, or None) as a list of parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    return []


def text_of(content: Any) -> str:
    """Only the text of OpenAI message content."""
    return "".join(p.get("text") or "" for p in parts(content) if p.get("type") == "text")


def image_url_of(part: dict[str, Any]) -> str | None:
    image = part.get("image_url")
    if isinstance(image, str):
        return image
    if isinstance(image, dict) and isinstance(image.get("url"), str):
        return str(image["url"])
    return None


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A tool call's `arguments` (a JSON string in OpenAI's shape) as an object for upstreams that want one."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
