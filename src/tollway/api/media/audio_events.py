"""The openai SDK's streamed audio events: speech with `stream_format="sse"` (`speech.audio.delta`
carrying base64 audio, then `speech.audio.done`) and transcription with `stream=True`
(`transcript.text.delta`, then `transcript.text.done`)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollway.base import tokens
from tollway.providers.media import Transcript


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def speech_events(chunks: AsyncIterator[bytes], text: str) -> AsyncIterator[bytes]:
    """Each audio chunk as it is encoded; `usage` counts the input's tokens (speech is billed by
    character: `x-tollway-cost`-style headers say what was charged, not this)."""
    async for chunk in chunks:
        if chunk:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()})
    used = tokens.count([text])
    usage = {"input_tokens": used, "output_tokens": 0, "total_tokens": used}
    yield _event({"type": "speech.audio.done", "usage": usage})


async def transcript_events(transcript: Transcript) -> AsyncIterator[bytes]:
    """The transcript, segment by segment (the whole transcript was made, and charged, first)."""
    pieces = [str(s.get("text") or "") for s in transcript.segments] or [transcript.text]
    for piece in pieces:
        if piece:
            yield _event({"type": "transcript.text.delta", "delta": piece})
    seconds = round(transcript.duration + 0.4999)
    yield _event(
        {
            "type": "transcript.text.done",
            "text": transcript.text,
            "usage": {"type": "duration", "seconds": seconds},
        }
    )
