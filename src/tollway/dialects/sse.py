"""Server-Sent Events, both directions.

- `iter_events`: a decoder for upstream streams (WHATWG rules: data/event/id, blank line ends).
  Written here because httpx-sse, the library of the field, imports httpx and our client is httpx2.
- `openai_chunks`: re-reads the pipeline's OpenAI SSE frames, for surfaces that speak another
  streaming protocol (dialects/anthropic/stream.py, dialects/gemini/stream.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

# What every SSE response carries: no caching, and no proxy buffering (nginx honours the second).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE: dict[str, Any] = {"__done__": True}


@dataclass(slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


async def iter_events(lines: AsyncIterator[str]) -> AsyncIterator[ServerSentEvent]:
    event, last_id = "", None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment: upstream keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            last_id = value
    if data:  # the stream ended without the blank line that closes the last event
        yield ServerSentEvent(event or "message", "\n".join(data), last_id)


async def openai_chunks(frames: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Each `data: …` frame as a dict (chunks, or `{"error": …}`), then DONE for `[DONE]`.

    The frames iterator is closed when this one is, so a client that leaves is noticed by the
    pipeline (which then drains and bills the upstream on its own)."""
    try:
        async for frame in frames:
            payload = frame.removeprefix(b"data: ").strip()
            if payload == b"[DONE]":
                yield DONE
                return
            value = orjson.loads(payload)
            if isinstance(value, dict):
                yield value
    finally:
        close = getattr(frames, "aclose", None)
        if close is not None:
            await close()
