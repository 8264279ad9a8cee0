"""A Server-Sent Events decoder for upstream streams (WHATWG rules: data/event/id, blank line ends).

Written here because httpx-sse, the library of the field, imports httpx and our client is httpx2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


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
