"""A deterministic fake Anthropic Messages upstream (same control API as tests/fakes/openai_upstream.py).

``python -m tests.fakes.anthropic_upstream --port P``. ``POST /v1/messages`` answers "echo: " + the
last user text, one token per word (input: words of system and all text blocks). A system prompt
containing "cached" is reported as cache reads (cache_read_input_tokens = its words). With `tools`
and no tool_result in the last turn, the answer is a tool_use of the first tool with
``{"echo": <last user text>}``. Behaviors (``/_fake/script``): status, delay_first_byte, cut,
error_event (an `overloaded_error` event), slow, as in the OpenAI fake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_upstream import CutConnection, _HideScriptedCuts, _State, health, reset, script, stats

JSON = dict[str, Any]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _event(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def messages(request: Request) -> Response:
    state: _State = request.app.state.fake
    key = request.headers.get("x-api-key", "")
    if key != state.api_key:
        return _error(401, "authentication_error", f"invalid x-api-key: {key}")
    body = await request.json()
    state.calls["chat"] += 1
    state.requests.append(
        {**body, "_headers": {"anthropic-version": request.headers.get("anthropic-version")}}
    )
    behavior = state.behaviors.popleft() if state.behaviors else {"type": "normal"}
    if behavior["type"] == "delay_first_byte":
        await asyncio.sleep(float(behavior["seconds"]))
    if behavior["type"] == "status":
        status = int(behavior["status"])
        headers = {"retry-after": str(behavior["retry_after"])} if "retry_after" in behavior else None
        return _error(status, "api_error", f"scripted status {status}", headers)
    if "max_tokens" not in body:
        return _error(400, "invalid_request_error", "max_tokens: Field required")
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
        words = ("echo: " + last_text).split()
        stop = "end_turn"
        if len(words) > int(body["max_tokens"]):
            words, stop = words[: int(body["max_tokens"])], "max_tokens"
        content, completion = [{"type": "text", "text": " ".join(words)}], len(words)
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
        delay = float(behavior["delay"]) if behavior["type"] == "slow" else state.chunk_delay
        return StreamingResponse(_stream(message, behavior, delay), media_type="text/event-stream")
    return JSONResponse(message)


async def _stream(message: JSON, behavior: JSON, delay: float) -> AsyncIterator[bytes]:
    kind = behavior["type"]
    stop_after = int(behavior.get("after_chunks", 0)) if kind in ("cut", "error_event") else None
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    yield _event("message_start", {"type": "message_start", "message": start})
    yield _event("ping", {"type": "ping"})
    deltas: list[tuple[int, JSON]] = []
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opener = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            pieces = [{"type": "text_delta", "text": (" " if i else "") + w} for i, w in enumerate(words)]
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
            if sent == stop_after:
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


def create_app(api_key: str = "upstream-secret", *, chunk_delay: float = 0.02) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/_fake/script", script, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/stats", stats, methods=["GET"]),
            Route("/_fake/health", health, methods=["GET"]),
        ]
    )
    app.state.fake = _State(api_key, chunk_delay)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="upstream-secret")
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        create_app(args.api_key, chunk_delay=args.chunk_delay),
        host=args.host,
        port=args.port,
        log_level="info",
    )
    logging.getLogger("uvicorn.error").addFilter(_HideScriptedCuts())
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
