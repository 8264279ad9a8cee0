"""A deterministic fake Anthropic Messages upstream (same control API as tests/fakes/openai_upstream.py).

``python -m tests.fakes.anthropic_upstream --port P``. ``POST /v1/messages`` answers "echo: " + the
last user text, one token per word (input: words of system and all text blocks). A system prompt
containing "cached" is reported as cache reads (cache_read_input_tokens = its words). With `tools`
and no tool_result in the last turn, the answer is a tool_use of the first tool with
``{"echo": <last user text>}``. Behaviors (``/_fake/script``): status, delay_first_byte, cut,
error_event (an `overloaded_error` event), slow, fill (exactly `max_tokens` words), garbage ("json":
a body or an SSE data line that is not JSON; "shape": content that is not a list of blocks, or a delta
that is not an object), as in the OpenAI fake.

Extended thinking (``thinking: {type: enabled}``): the answer starts with a `thinking` block ("pondering
<last user text>") signed ``sig-<sha256 of its text>``, streamed as thinking_delta then signature_delta.
As Anthropic does, a request with thinking on is refused 400 when an assistant turn that used a tool
does not start with its thinking block, or when a replayed thinking block's signature is not the one
this fake signed it with.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import common
from tests.fakes.common import DEFAULT_API_KEY, DEFAULT_CHUNK_DELAY, JSON, CutConnection, ScriptedState


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


def _signature(thinking: str) -> str:
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def _thinking_refusal(body: JSON) -> str | None:
    """Why Anthropic would refuse this replay with thinking on (None: it would not)."""
    if (body.get("thinking") or {}).get("type") != "enabled":
        return None
    for message in body.get("messages") or ():
        blocks = message.get("content") if isinstance(message.get("content"), list) else []
        for block in blocks:
            if block.get("type") == "thinking" and block.get("signature") != _signature(
                block.get("thinking", "")
            ):
                return "messages: Invalid `signature` in `thinking` block"
        uses_tool = any(b.get("type") == "tool_use" for b in blocks)
        first = blocks[0].get("type") if blocks else None
        if (
            message.get("role") == "assistant"
            and uses_tool
            and first not in ("thinking", "redacted_thinking")
        ):
            return "messages: Expected `thinking` or `redacted_thinking`, but found `tool_use`."
    return None


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _event(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def messages(request: Request) -> Response:
    state: ScriptedState = common.fake_state(request)
    key = request.headers.get("x-api-key", "")
    if key != state.api_key:
        return _error(401, "authentication_error", f"invalid x-api-key: {key}")
    body = await request.json()
    headers = {"anthropic-version": request.headers.get("anthropic-version")}
    behavior = await state.take("chat", {**body, "_headers": headers})
    if scripted := common.scripted_status(behavior):
        status, retry = scripted
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
        return _error(status, kind.get(status, "api_error"), common.status_message(behavior), retry)
    if "max_tokens" not in body:
        return _error(400, "invalid_request_error", "max_tokens: Field required")
    broken = common.garbage(behavior)
    if broken is not None and not body.get("stream"):
        if broken == "shape":
            return JSONResponse({"id": "msg_broken", "type": "message", "content": "not a list of blocks"})
        return Response(common.BROKEN_JSON, media_type="application/json")
    messages_ = body.get("messages") or []
    last = messages_[-1] if messages_ else {}
    last_text = _text(last.get("content"))
    system = body.get("system") or ""
    system_text = system if isinstance(system, str) else _text(system)
    prompt = len(system_text.split()) + sum(len(_text(m.get("content")).split()) for m in messages_)
    cached = len(system_text.split()) if "cached" in system_text else 0
    tool_results = [
        b for b in last.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    if refused := _thinking_refusal(body):
        return _error(400, "invalid_request_error", refused)
    tools = body.get("tools") or []
    content: list[JSON]
    if tools and not tool_results:
        call = {
            "type": "tool_use",
            "id": f"toolu_fake_{state.calls['chat']}",
            "name": tools[0]["name"],
            "input": {"echo": last_text},
        }
        content, stop, completion = [call], "tool_use", 5
    else:
        if tool_results:
            result = tool_results[0].get("content")
            last_text = "result " + (result if isinstance(result, str) else _text(result))
        filled = common.fill_words(behavior, body["max_tokens"])
        words = filled or ("echo: " + last_text).split()
        stop = "max_tokens" if filled else "end_turn"
        if len(words) > int(body["max_tokens"]):
            words, stop = words[: int(body["max_tokens"])], "max_tokens"
        content, completion = [{"type": "text", "text": " ".join(words)}], len(words)
    if (body.get("thinking") or {}).get("type") == "enabled":
        thought = f"pondering {last_text}"
        content = [{"type": "thinking", "thinking": thought, "signature": _signature(thought)}, *content]
        completion += len(thought.split())
    usage = {
        "input_tokens": prompt - cached,
        "output_tokens": completion,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }
    message = {
        "id": f"msg_fake_{state.calls['chat']}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if body.get("stream"):
        delay = state.chunk_delay_for(behavior)
        return StreamingResponse(_stream(message, behavior, delay), media_type="text/event-stream")
    return JSONResponse(message)


async def _stream(message: JSON, behavior: JSON, delay: float) -> AsyncIterator[bytes]:
    kind = behavior["type"]
    if kind == "fill":  # a long answer: a chunk per 64 words, at full speed
        behavior, delay = common.NORMAL, 0.0
    last_chunk = common.stop_after(behavior)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    yield _event("message_start", {"type": "message_start", "message": start})
    yield _event("ping", {"type": "ping"})
    deltas: list[tuple[int, JSON]] = []
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            opener = {"type": "thinking", "thinking": ""}
            pieces = [{"type": "thinking_delta", "thinking": block["thinking"]}]
            pieces.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            opener = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            texts = common.pieces_of(words) if len(words) > common.FILL_PIECE_WORDS else None
            texts = texts or [(" " if i else "") + w for i, w in enumerate(words)]
            pieces = [{"type": "text_delta", "text": text} for text in texts]
        else:
            opener = {**block, "input": {}}
            raw = json.dumps(block["input"])
            pieces = [
                {"type": "input_json_delta", "partial_json": raw[: len(raw) // 2]},
                {"type": "input_json_delta", "partial_json": raw[len(raw) // 2 :]},
            ]
        yield _event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": opener}
        )
        deltas = [(index, p) for p in pieces]
        for sent, (i, piece) in enumerate(deltas):
            if sent == last_chunk and kind == "garbage":
                if common.garbage(behavior) == "shape":
                    yield _event(
                        "content_block_delta", {"type": "content_block_delta", "index": i, "delta": "x"}
                    )
                else:
                    yield b"event: content_block_delta\ndata: " + common.BROKEN_JSON + b"\n\n"
                continue
            if sent == last_chunk:
                if kind == "cut":
                    await asyncio.sleep(delay)
                    raise CutConnection("scripted cut")
                yield _event(
                    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "boom"}}
                )
                return
            if sent:
                await asyncio.sleep(delay)
            yield _event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": piece})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


def create_app(api_key: str = DEFAULT_API_KEY, *, chunk_delay: float = DEFAULT_CHUNK_DELAY) -> Starlette:
    return common.fake_app(
        [Route("/v1/messages", messages, methods=["POST"])], ScriptedState(api_key, chunk_delay)
    )


def main(argv: list[str] | None = None) -> None:
    common.upstream_main(__doc__, create_app, argv)


if __name__ == "__main__":
    main()
