"""Re-reading the pipeline's OpenAI SSE frames, for surfaces that speak another streaming protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE: dict[str, Any] = {"__done__": True}


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
