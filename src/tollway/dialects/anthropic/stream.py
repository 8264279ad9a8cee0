"""Anthropic streaming events ⇄ OpenAI `chat.completion.chunk`s, both directions, pure state machines."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollway.dialects.anthropic.inbound import message_id, usage_from_openai
from tollway.dialects.anthropic.shapes import FINISH_TO_STOP, STOP_TO_FINISH, usage_to_openai
from tollway.dialects.sse import DONE, openai_chunks
from tollway.dialects.translation import THINKING_BLOCKS, signed_thinking
from tollway.errors import ErrorCode

JSON = dict[str, Any]


class StreamError(Exception):
    """The upstream sent an `error` event. The message is the upstream's type only, never its text."""


class ToOpenAI:
    """Feeds Anthropic events (name, data) and returns the OpenAI chunks they become."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: JSON = {}
        self.tools: dict[int, int] = {}  # Anthropic content block index → OpenAI tool_calls index
        self.thinking: dict[int, JSON] = {}  # a thinking block being received, by its index
        self.done = False

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def feed(self, event: str, data: JSON) -> list[JSON]:
        kind = data.get("type") or event
        if kind == "message_start":
            message = data.get("message") or {}
            self.id, self.model = str(message.get("id") or ""), str(message.get("model") or "")
            self.usage.update({k: v for k, v in (message.get("usage") or {}).items() if isinstance(v, int)})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") in ("thinking", "redacted_thinking"):
                self.thinking[int(data.get("index") or 0)] = dict(block)
                return []
            if block.get("type") == "tool_use":
                index = self.tools.setdefault(int(data.get("index") or 0), len(self.tools))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            building = self.thinking.get(int(data.get("index") or 0))
            if building is not None and delta.get("type") in ("thinking_delta", "signature_delta"):
                field = "thinking" if delta["type"] == "thinking_delta" else "signature"
                building[field] = str(building.get(field) or "") + str(delta.get(field) or "")
                return []
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(int(data.get("index") or 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json") or ""}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "content_block_stop" and int(data.get("index") or 0) in self.thinking:
            # A whole signed block, once its signature is in: replayable on the next turn.
            blocks = signed_thinking([self.thinking.pop(int(data.get("index") or 0))])
            return [self._chunk({THINKING_BLOCKS: blocks})] if blocks else []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if isinstance(v, int)})
            stop = (data.get("delta") or {}).get("stop_reason")
            chunk = self._chunk({}, STOP_TO_FINISH.get(stop or "", "stop"))
            usage = usage_to_openai(self.usage)
            if usage is not None:
                chunk["usage"] = usage
            return [chunk]
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error":
            error = data.get("error") or {}
            raise StreamError(str(error.get("type") or "error"))
        return []  # ping, and event types added after this was written


def _event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class FromOpenAI:
    """Feeds OpenAI chunks (the pipeline's frames) and returns Anthropic SSE events as bytes."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block: tuple[str, int] | None = None  # ("text", -1) or ("tool", openai tool index)
        self.index = -1
        self.finish = "stop"
        self.usage: JSON = {}

    def _start(self, chunk: JSON) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: JSON = {
            "id": message_id(str(chunk.get("id") or "")),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # known at the end: see message_delta
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _open(self, block: JSON, key: tuple[str, int]) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.block = key
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return out

    def _thinking(self, block: JSON) -> list[bytes]:
        """A signed thinking block, whole: its opener, its text and its signature, closed."""
        if block["type"] == "redacted_thinking":
            return [*self._open(block, ("thinking", self.index + 1)), *self._close()]
        out = self._open({"type": "thinking", "thinking": "", "signature": ""}, ("thinking", self.index + 1))
        for delta in (
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ):
            out.append(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self.index, "delta": delta},
                )
            )
        return out + self._close()

    def feed(self, chunk: JSON) -> list[bytes]:
        out = self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            for signed in signed_thinking(delta.get(THINKING_BLOCKS)):
                out += self._thinking(signed)
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.block != ("text", -1):
                    out += self._open({"type": "text", "text": ""}, ("text", -1))
                out.append(
                    _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self.index,
                            "delta": {"type": "text_delta", "text": text},
                        },
                    )
                )
            for call in delta.get("tool_calls") or ():
                position = int(call.get("index") or 0)
                function = call.get("function") or {}
                if self.block != ("tool", position):
                    block: JSON = {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{position}",
                        "name": function.get("name") or "",
                        "input": {},
                    }
                    out += self._open(block, ("tool", position))
                if function.get("arguments"):
                    out.append(
                        _event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": self.index,
                                "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                            },
                        )
                    )
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        out = self._start({}) + self._close()
        delta = {"stop_reason": FINISH_TO_STOP.get(self.finish, "end_turn"), "stop_sequence": None}
        out.append(
            _event(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage_from_openai(self.usage)},
            )
        )
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out

    @staticmethod
    def error(status: int, message: str) -> bytes:
        kind = "overloaded_error" if status in (503, 529) else "api_error"
        return _event("error", {"type": "error", "error": {"type": kind, "message": message}})


async def events(frames: AsyncIterator[bytes], model: str) -> AsyncIterator[bytes]:
    """The pipeline's OpenAI SSE frames as Anthropic's streaming events; an error ends the stream."""
    translate = FromOpenAI(model)
    async for chunk in openai_chunks(frames):
        if chunk is DONE:
            for event in translate.end():
                yield event
            return
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            status = ErrorCode[error["code"]].status if error.get("code") in ErrorCode.__members__ else 500
            yield translate.error(status, str(error.get("message") or "The upstream failed mid-stream."))
            return
        for event in translate.feed(chunk):
            yield event
    yield translate.error(502, "The stream ended before it was complete.")
