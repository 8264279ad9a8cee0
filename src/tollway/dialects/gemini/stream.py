"""Gemini `streamGenerateContent?alt=sse` events ⇄ OpenAI `chat.completion.chunk`s, both directions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollway.dialects.gemini.errors import error_body
from tollway.dialects.gemini.inbound import candidate_from_openai, usage_from_openai
from tollway.dialects.gemini.shapes import candidate_delta, get, usage_to_openai
from tollway.dialects.sse import DONE, openai_chunks
from tollway.dialects.translation import EXTRA_CONTENT
from tollway.errors import ErrorCode

JSON = dict[str, Any]


class ToOpenAI:
    """Each Gemini event is a whole GenerateContentResponse holding the next piece of each candidate."""

    def __init__(self, model: str) -> None:
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.tool_calls: dict[int, int] = {}  # candidate index → tool calls so far
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.candidates = 0

    @property
    def done(self) -> bool:
        return bool(self.finished) and len(self.finished) >= self.candidates

    def feed(self, event: JSON) -> list[JSON]:
        self.id = self.id or str(get(event, "responseId") or "")
        self.model = str(get(event, "modelVersion") or self.model)
        choices = []
        for position, candidate in enumerate(event.get("candidates") or ()):
            index = int(candidate.get("index") or position)
            self.candidates = max(self.candidates, index + 1)
            text, calls, finish = candidate_delta(candidate, self.tool_calls.get(index, 0))
            self.tool_calls[index] = self.tool_calls.get(index, 0) + len(calls)
            delta: JSON = {}
            if index not in self.started:
                self.started.add(index)
                delta["role"] = "assistant"
            if text or "role" in delta:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = calls
            if finish is not None:
                self.finished.add(index)
                if self.tool_calls[index] and finish == "stop":
                    finish = "tool_calls"
            choices.append({"index": index, "delta": delta, "finish_reason": finish})
        chunk: JSON = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        usage = usage_to_openai(get(event, "usageMetadata"))
        if usage is not None:
            chunk["usage"] = usage  # running totals: the pipeline bills the last one
        return [chunk] if choices or usage is not None else []


def sse(data: JSON) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


class FromOpenAI:
    """OpenAI chunks (the pipeline's frames) → Gemini SSE events. A function call is sent whole,
    in the last event, because Gemini's shape has no argument fragments."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.calls: dict[tuple[int, int], JSON] = {}
        self.finish: dict[int, str] = {}
        self.usage: JSON | None = None

    def feed(self, chunk: JSON) -> list[bytes]:
        self.id = self.id or str(chunk.get("id") or "")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        candidates = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or ():
                key = (index, int(call.get("index") or 0))
                held = self.calls.setdefault(key, {"function": {"name": "", "arguments": ""}})
                function = call.get("function") or {}
                held["function"]["name"] += function.get("name") or ""
                held["function"]["arguments"] += function.get("arguments") or ""
                if EXTRA_CONTENT in call:  # a Gemini thought signature, sent back with the call
                    held[EXTRA_CONTENT] = call[EXTRA_CONTENT]
            if choice.get("finish_reason"):
                self.finish[index] = choice["finish_reason"]
            text = delta.get("content")
            if isinstance(text, str) and text:
                candidates.append(candidate_from_openai(index, text, [], None))
        if not candidates:
            return []
        return [sse({"candidates": candidates, "modelVersion": self.model, "responseId": self.id})]

    def end(self) -> list[bytes]:
        indexes = sorted(set(self.finish) | {i for i, _ in self.calls}) or [0]
        candidates = []
        for index in indexes:
            calls = [call for (i, _), call in sorted(self.calls.items()) if i == index]
            candidates.append(candidate_from_openai(index, "", calls, self.finish.get(index, "stop")))
        return [
            sse(
                {
                    "candidates": candidates,
                    "usageMetadata": usage_from_openai(self.usage),
                    "modelVersion": self.model,
                    "responseId": self.id,
                }
            )
        ]


async def events(frames: AsyncIterator[bytes], model: str, as_sse: bool) -> AsyncIterator[bytes]:
    """`alt=sse`: one `data:` event per response; otherwise a JSON array streamed element by element."""
    translate = FromOpenAI(model)
    first = True

    def out(events: list[bytes]) -> list[bytes]:
        nonlocal first
        if as_sse:
            return events
        framed = []
        for event in events:
            item = event.removeprefix(b"data: ").rstrip()
            framed.append((b"[" if first else b",\r\n") + item)
            first = False
        return framed

    async for chunk in openai_chunks(frames):
        if chunk is DONE:
            for event in out(translate.end()):
                yield event
            if not as_sse:
                yield b"]" if not first else b"[]"
            return
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            status = ErrorCode[error["code"]].status if error.get("code") in ErrorCode.__members__ else 500
            message = str(error.get("message") or "The upstream failed mid-stream.")
            for event in out([sse(error_body(status, message))]):
                yield event
            if not as_sse:
                yield b"]"
            return
        for event in out(translate.feed(chunk)):
            yield event
    for event in out([sse(error_body(502, "The stream ended before it was complete."))]):
        yield event
