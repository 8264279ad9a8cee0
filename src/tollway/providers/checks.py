"""What an upstream answered, checked before anything reads it.

Every provider passes its answers through here: a chat answer, each stream chunk, an embeddings
answer, base64 media. Whatever cannot be read (a wrong shape, broken base64, a translation that
fails on an odd event) becomes an UpstreamError, which the client sees as a 502 `UPSTREAM_ERROR`
(or, mid-stream, as the stream's error frame), never as a 500 or a client's 400. A malformed
`usage` object is dropped, so the call is billed on the counted text (`usage_source=estimated`)
rather than on numbers that cannot be true.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from tollway.providers.base import UpstreamError

T = TypeVar("T")
_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE_DETAILS = {
    "prompt_tokens_details": "cached_tokens",
    "completion_tokens_details": "reasoning_tokens",
}


def malformed(provider_id: str, what: str, *, retryable: bool = True) -> UpstreamError:
    return UpstreamError(f"provider {provider_id!r} sent {what}", retryable=retryable)


def translated(provider_id: str, translate: Callable[..., T], *args: Any, retryable: bool = True) -> T:
    """`translate(*args)`: a dialect's reading of an upstream answer or event; one it cannot read
    is malformed."""
    try:
        return translate(*args)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise malformed(provider_id, "an answer it could not read", retryable=retryable) from None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _usage_ok(usage: Any) -> bool:
    if not isinstance(usage, dict):
        return False
    if any(name in usage and usage[name] is not None and not _count(usage[name]) for name in _USAGE_COUNTS):
        return False
    for name, inner in _USAGE_DETAILS.items():
        details = usage.get(name)
        if details is None:
            continue
        if not isinstance(details, dict) or (details.get(inner) is not None and not _count(details[inner])):
            return False
    return True


def _drop_bad_usage(answer: dict[str, Any]) -> None:
    if answer.get("usage") is not None and not _usage_ok(answer["usage"]):
        del answer["usage"]  # billed on the counted text instead


def _tool_calls_ok(calls: Any) -> bool:
    if calls is None:
        return True
    if not isinstance(calls, list):
        return False
    for call in calls:
        if not isinstance(call, dict):
            return False
        function = call.get("function")
        if function is not None and not (
            isinstance(function, dict) and isinstance(function.get("arguments"), str | None)
        ):
            return False
    return True


def _message_ok(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("content"), str | None)
        and _tool_calls_ok(message.get("tool_calls"))
    )


def _index_ok(choice: dict[str, Any]) -> bool:
    index = choice.get("index")
    return index is None or (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 1024)


def chat_answer(provider_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A buffered chat answer in OpenAI's shape: choices with messages whose content is text."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not all(
        isinstance(c, dict) and _index_ok(c) and _message_ok(c.get("message")) for c in choices
    ):
        raise malformed(provider_id, "a chat answer in an unexpected shape")
    _drop_bad_usage(answer)
    return answer


def _delta_ok(choice: Any) -> bool:
    if not isinstance(choice, dict) or not _index_ok(choice):
        return False
    delta = choice.get("delta")
    if delta is None:
        return True
    return (
        isinstance(delta, dict)
        and isinstance(delta.get("content"), str | None)
        and _tool_calls_ok(delta.get("tool_calls"))
    )


def chat_chunk(provider_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
    """One `chat.completion.chunk`; a stream is never retried once it started, so neither is this."""
    choices = chunk.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(_delta_ok(c) for c in choices)):
        raise malformed(provider_id, "a stream chunk in an unexpected shape", retryable=False)
    _drop_bad_usage(chunk)
    return chunk


def b64decode(provider_id: str, text: str, what: str) -> bytes:
    """Strict base64 (line breaks allowed): anything else is the upstream's fault, not ours."""
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise malformed(provider_id, f"{what} that is not valid base64") from None
    if not data:
        raise malformed(provider_id, f"empty {what}")
    return data


def _vector(provider_id: str, value: Any) -> list[float]:
    if isinstance(value, str):  # base64 of little-endian float32, however it was asked for
        raw = b64decode(provider_id, value, "an embedding")
        if len(raw) % 4:
            raise malformed(provider_id, "an embedding whose base64 is not a whole number of float32s")
        value = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value:
        raise malformed(provider_id, "an embedding that is not a list of numbers")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise malformed(provider_id, "an embedding that is not a list of finite numbers")
    return [float(number) for number in value]


def embeddings(provider_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """An embeddings answer whose vectors are lists of floats (base64 ones decoded)."""
    data = answer.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise malformed(provider_id, "an embeddings answer in an unexpected shape")
    for item in data:
        item["embedding"] = _vector(provider_id, item.get("embedding"))
    _drop_bad_usage(answer)
    return answer


def _text_choice_ok(choice: Any) -> bool:
    return isinstance(choice, dict) and _index_ok(choice) and isinstance(choice.get("text"), str)


def completion_answer(provider_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A buffered legacy completion: choices whose `text` is a string."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not all(_text_choice_ok(c) for c in choices):
        raise malformed(provider_id, "a completion in an unexpected shape")
    _drop_bad_usage(answer)
    return answer


def completion_chunk(provider_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
    """One streamed legacy completion chunk (`choices[].text`); never retried once a stream started."""
    choices = chunk.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(_text_choice_ok(c) for c in choices)):
        raise malformed(provider_id, "a completion chunk in an unexpected shape", retryable=False)
    _drop_bad_usage(chunk)
    return chunk


def moderation_answer(provider_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A moderation answer: `results`, one object per input, with `flagged` a boolean."""
    results = answer.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("flagged"), bool) for r in results
    ):
        raise malformed(provider_id, "a moderation answer in an unexpected shape")
    return answer
