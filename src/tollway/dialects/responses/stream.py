"""The pipeline's chat chunks as the Responses API's typed streaming events, a pure state machine.

Order, as OpenAI documents it: response.created, response.in_progress; per output item
response.output_item.added, its content (a message: content_part.added, output_text.delta…,
output_text.done, content_part.done; a function call: function_call_arguments.delta…, .done; a
reasoning item: reasoning_text.delta…, .done), response.output_item.done; then response.completed
(or .incomplete) carrying the whole Response with its usage. A failure mid-stream is an `error` event
and response.failed. Every event has its `sequence_number`, from 0.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from tollway.dialects.responses.items import sealed_thinking
from tollway.dialects.responses.shapes import (
    envelope,
    finish,
    function_call_item,
    message_item,
    new_id,
    reasoning_item,
)
from tollway.dialects.sse import DONE, openai_chunks
from tollway.dialects.translation import THINKING_BLOCKS, signed_thinking
from tollway.errors import ErrorCode

JSON = dict[str, Any]


def _part() -> JSON:
    return {"type": "output_text", "text": "", "annotations": [], "logprobs": []}


class FromChat:
    """Feeds chat.completion.chunks and returns Responses SSE events as bytes."""

    def __init__(self, body: JSON, model: str) -> None:
        self.response = envelope(body, new_id("resp"), model)
        self.sequence = 0
        self.output: list[JSON] = []
        self.item: JSON | None = None  # the open output item
        self.key: tuple[str, int] | None = None  # ("message" | "reasoning", -1) or ("tool", chat index)
        self.finish_reason: str | None = None
        self.usage: Any = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _where(self) -> JSON:
        assert self.item is not None
        return {"item_id": self.item["id"], "output_index": len(self.output)}

    def start(self) -> list[bytes]:
        return [
            self._event("response.created", response=copy.deepcopy(self.response)),
            self._event("response.in_progress", response=copy.deepcopy(self.response)),
        ]

    def _open(self, item: JSON, key: tuple[str, int]) -> list[bytes]:
        out = self._close()
        self.item, self.key = item, key
        out.append(
            self._event("response.output_item.added", output_index=len(self.output), item=copy.deepcopy(item))
        )
        if item["type"] == "message":
            out.append(
                self._event("response.content_part.added", **self._where(), content_index=0, part=_part())
            )
            item["_part"] = _part()  # the text so far; the item's content once it is done
        return out

    def _open_message(self) -> list[bytes]:
        item = message_item(new_id("msg"), "", status="in_progress")
        item["content"] = []
        return self._open(item, ("message", -1))

    def _close(self) -> list[bytes]:
        item = self.item
        if item is None:
            return []
        where = self._where()
        out: list[bytes] = []
        if item["type"] == "message":
            part = item.pop("_part")
            text = part["text"]
            out.append(
                self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            )
            out.append(self._event("response.content_part.done", **where, content_index=0, part=part))
            item["content"] = [part]
        elif item["type"] == "reasoning":
            text = item["content"][0]["text"]
            out.append(self._event("response.reasoning_text.done", **where, content_index=0, text=text))
        else:
            out.append(
                self._event("response.function_call_arguments.done", **where, arguments=item["arguments"])
            )
        item["status"] = "completed"
        out.append(self._event("response.output_item.done", output_index=where["output_index"], item=item))
        self.output.append(item)
        self.item = self.key = None
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.key != ("message", -1):
            out += self._open_message()
        assert self.item is not None
        self.item["_part"]["text"] += text
        out.append(
            self._event(
                "response.output_text.delta", **self._where(), content_index=0, delta=text, logprobs=[]
            )
        )
        return out

    def _reasoning(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.key != ("reasoning", -1):
            out += self._open(reasoning_item(new_id("rs"), ""), ("reasoning", -1))
        assert self.item is not None
        self.item["content"][0]["text"] += text
        out.append(self._event("response.reasoning_text.delta", **self._where(), content_index=0, delta=text))
        return out

    def _signed(self, blocks: list[JSON]) -> list[bytes]:
        """An Anthropic upstream's signed thinking, whole: a reasoning item carrying it to send back."""
        text = "".join(block.get("thinking", "") for block in blocks)
        if text and self.key == ("reasoning", -1):  # the same thinking already streamed as text
            text = ""
        out = self._reasoning(text) if text else []
        if self.key != ("reasoning", -1):
            out += self._open(reasoning_item(new_id("rs"), ""), ("reasoning", -1))
        assert self.item is not None
        self.item["encrypted_content"] = sealed_thinking(blocks)
        return out

    def _tool(self, call: JSON) -> list[bytes]:
        out: list[bytes] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        if self.key != ("tool", position):
            call_id = str(call.get("id") or new_id("call"))
            item = function_call_item(
                new_id("fc"), call_id, str(function.get("name") or ""), "", "in_progress"
            )
            out += self._open(item, ("tool", position))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            assert self.item is not None
            self.item["arguments"] += arguments
            out.append(
                self._event("response.function_call_arguments.delta", **self._where(), delta=arguments)
            )
        return out

    def feed(self, chunk: JSON) -> list[bytes]:
        out: list[bytes] = []
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content")
            if isinstance(thinking, str) and thinking:
                out += self._reasoning(thinking)
            if signed := signed_thinking(delta.get(THINKING_BLOCKS)):
                out += self._signed(signed)
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or ():
                out += self._tool(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        out = self._close()
        if not self.output:  # an answer of nothing is still one (empty) message, as OpenAI's is
            out += self._open_message() + self._close()
        response = finish(self.response, self.output, self.finish_reason, self.usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=response))
        return out

    def fail(self, status: int, message: str) -> list[bytes]:
        """The stream broke: an `error` event, then response.failed with what was produced so far."""
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        out = [self._event("error", code=code, message=message, param=None)]
        self.response.update(
            status="failed", output=self.output, error={"code": code, "message": message}, usage=None
        )
        out.append(self._event("response.failed", response=self.response))
        return out


async def events(
    frames: AsyncIterator[bytes],
    body: JSON,
    model: str,
    on_done: Callable[[JSON], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """The pipeline's OpenAI SSE frames as Responses streaming events; an error ends the stream.
    `on_done` gets the finished Response (completed or incomplete) before its last event is sent."""
    translate = FromChat(body, model)
    for event in translate.start():
        yield event
    async for chunk in openai_chunks(frames):
        if chunk is DONE:
            last = translate.end()
            if on_done is not None:
                await on_done(translate.response)
            for event in last:
                yield event
            return
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            status = ErrorCode[error["code"]].status if error.get("code") in ErrorCode.__members__ else 500
            for event in translate.fail(
                status, str(error.get("message") or "The upstream failed mid-stream.")
            ):
                yield event
            return
        for event in translate.feed(chunk):
            yield event
    for event in translate.fail(502, "The stream ended before it was complete."):
        yield event
