"""Small pure helpers over OpenAI message content, shared by the Anthropic and Gemini translations."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.errors import ErrorCode, TollwayError

JSON = dict[str, Any]
DEFAULT_IMAGE_TYPE = "image/png"  # what an inline image without a media type is taken to be

_DATA_URL = re.compile(r"^(?i:data):(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)


# The standard base64 alphabet (line breaks allowed, as MIME writes it), checked without decoding.
_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*")


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


def split_system(messages: Iterable[JSON]) -> tuple[str, list[JSON]]:
    """(the text of the system and developer messages, joined by blank lines; the other messages),
    for upstreams that take the system prompt apart from the turns."""
    system: list[str] = []
    rest: list[JSON] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            if text := text_of(message.get("content")):
                system.append(text)
        else:
            rest.append(message)
    return "\n\n".join(system), rest


def image_url_of(part: dict[str, Any]) -> str | None:
    image = part.get("image_url")
    if isinstance(image, str):
        return image
    if isinstance(image, dict) and isinstance(image.get("url"), str):
        return str(image["url"])
    return None


@dataclass(frozen=True)
class Image:
    """An OpenAI `image_url` part as an upstream takes it: inline base64 with its media type, or a URL."""

    url: str
    media_type: str | None = None  # with `data`: the image is inline (a base64 data URL)
    data: str | None = None


def image_of(part: JSON, media_types: Collection[str] | None = None) -> Image | None:
    """The image of an OpenAI `image_url` content part; None for any other part or an empty URL.

    A `data:` URL must be `data:<media type>;base64,<data>` with some data and, when `media_types`
    (lower case) is given, one of those types: anything else is 400 INVALID_IMAGE_FORMAT here,
    where it would otherwise go upstream, be refused, and come back as a 502 "safe to retry"."""
    if part.get("type") != "image_url" or not (url := image_url_of(part)):
        return None
    if url[:5].lower() != "data:":
        return Image(url)
    inline = data_url(url)
    if inline is None or not inline[1] or not _BASE64.fullmatch(inline[1]):
        raise TollwayError(
            ErrorCode.INVALID_IMAGE_FORMAT,
            "Image data URLs must be base64: data:<media type>;base64,<data>.",
            param="messages",
        )
    media_type, data = inline
    if media_types is not None and media_type.lower() not in media_types:
        raise TollwayError(
            ErrorCode.INVALID_IMAGE_FORMAT,
            f"Unsupported image type {media_type!r} for this model: send {', '.join(sorted(media_types))}.",
            param="messages",
        )
    return Image(url, media_type, data)


def image_part(url: str) -> JSON:
    """An OpenAI `image_url` content part."""
    return {"type": "image_url", "image_url": {"url": url}}


def inline_image_part(media_type: Any, data: Any) -> JSON:
    """An upstream's inline (base64) image as an OpenAI `image_url` part holding a data URL."""
    return image_part(to_data_url(str(media_type or DEFAULT_IMAGE_TYPE), str(data or "")))


def collapse(content: list[JSON]) -> str | list[JSON]:
    """Text-only OpenAI content parts as a plain string: the form every OpenAI-compatible upstream takes.
    Parts that carry a cache breakpoint (`cache_control`) stay parts, to keep it."""
    if all(p["type"] == "text" and "cache_control" not in p for p in content):
        return "".join(p["text"] for p in content)
    return content


def append_turn(turns: list[JSON], role: str, items: list[JSON], key: str) -> None:
    """Add `items` as a `role` turn, merged into the last turn when it has the same role: Anthropic
    and Gemini want user and assistant/model turns to alternate. `key` names the turn's item list."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def tool_call(call_id: Any, name: Any, arguments: Any) -> JSON:
    """An OpenAI tool call from an upstream's (id, name, arguments object)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dumps(arguments or {})},
    }


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
