"""A deterministic fake Gemini upstream (same control API as tests/fakes/openai_upstream.py).

``python -m tests.fakes.gemini_upstream --port P``. ``POST /v1beta/models/{m}:generateContent`` and
``:streamGenerateContent?alt=sse`` answer "echo: " + the last user text, one token per word
(prompt: words of systemInstruction and all text parts). A systemInstruction containing "cached" is
reported as cachedContentTokenCount (its words); a last user text containing "think" adds
thoughtsTokenCount 2. With `tools` and no functionResponse in the last turn, the answer is a
functionCall of the first function with ``{"echo": <last user text>}``. Behaviors as in the OpenAI fake:
fill answers exactly `generationConfig.maxOutputTokens` words (the fill's `uncapped` without one);
garbage "json" is a body or an SSE data line that is not JSON, "shape" candidates that are not a list.
With `generationConfig.thinkingConfig`, a functionCall part carries ``thoughtSignature: "gsig-<name>"``,
and, as Gemini does, a request whose model turn has a functionCall without its signature is a 400.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import common
from tests.fakes.common import DEFAULT_API_KEY, DEFAULT_CHUNK_DELAY, JSON, CutConnection, ScriptedState

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _text(parts: Any) -> str:
    return " ".join(p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
    return JSONResponse(body, status_code=status, headers=headers)


def _sse(data: JSON) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\r\n\r\n".encode()


async def generate(request: Request) -> Response:
    state: ScriptedState = common.fake_state(request)
    key = request.headers.get("x-goog-api-key", "")
    if key != state.api_key:
        return _error(401, f"API key not valid: {key}")
    model, _, action = request.path_params["target"].rpartition(":")
    if action not in ("generateContent", "streamGenerateContent"):
        return _error(404, f"unknown method {action}")
    body = await request.json()
    behavior = await state.take("chat", {**body, "_model": model, "_action": action})
    if scripted := common.scripted_status(behavior):
        status, headers = scripted
        return _error(status, common.status_message(behavior), headers)
    broken = common.garbage(behavior)
    if broken is not None and action == "generateContent":
        if broken == "shape":
            return JSONResponse({"candidates": "not a list", "usageMetadata": {"promptTokenCount": 1}})
        return Response(common.BROKEN_JSON, media_type="application/json")
    contents = body.get("contents") or []
    system_text = _text((body.get("systemInstruction") or {}).get("parts"))
    last = contents[-1] if contents else {}
    last_text = _text(last.get("parts"))
    prompt = len(system_text.split()) + sum(len(_text(c.get("parts")).split()) for c in contents)
    responses = [p["functionResponse"] for p in last.get("parts") or () if "functionResponse" in p]
    declarations = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    config = body.get("generationConfig") or {}
    thinking = "thinkingConfig" in config
    for content in contents if thinking else ():
        for part in content.get("parts") or ():
            call = part.get("functionCall")
            if (
                content.get("role") == "model"
                and call
                and part.get("thoughtSignature") != f"gsig-{call['name']}"
            ):
                return _error(400, "Function call is missing a thought_signature in functionCall parts.")
    parts: list[JSON]
    if declarations and not responses:
        call: JSON = {"functionCall": {"name": declarations[0]["name"], "args": {"echo": last_text}}}
        if thinking:
            call["thoughtSignature"] = f"gsig-{declarations[0]['name']}"
        parts, finish, completion = [call], "STOP", 5
    else:
        if responses:
            last_text = "result " + json.dumps(responses[0].get("response"), separators=(",", ":"))
        limit = config.get("maxOutputTokens")
        words = common.fill_words(behavior, limit) or ("echo: " + last_text).split()
        finish = "STOP"
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        texts = common.pieces_of(words) if behavior["type"] == "fill" else None
        texts = texts or [w if i == 0 else " " + w for i, w in enumerate(words)]
        parts, completion = [{"text": text} for text in texts], len(words)
        if behavior["type"] == "fill":
            finish, last_text = "MAX_TOKENS", ""  # no thinking tokens beyond the cap
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
    }
    if "cached" in system_text:
        usage["cachedContentTokenCount"] = len(system_text.split())
    if "think" in last_text:
        usage["thoughtsTokenCount"] = 2
        usage["totalTokenCount"] += 2
    if action == "streamGenerateContent":
        delay = state.chunk_delay_for(behavior)
        return StreamingResponse(
            _stream(parts, finish, usage, model, behavior, delay), media_type="text/event-stream"
        )
    text = "".join(p["text"] for p in parts if "text" in p)
    merged = ([{"text": text}] if text else []) + [p for p in parts if "functionCall" in p]
    return JSONResponse(
        {
            "candidates": [
                {"content": {"role": "model", "parts": merged}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": f"resp-fake-{state.calls['chat']}",
        }
    )


async def _stream(
    parts: list[JSON], finish: str, usage: JSON, model: str, behavior: JSON, delay: float
) -> AsyncIterator[bytes]:
    kind = behavior["type"]
    last_chunk = common.stop_after(behavior)
    if kind == "fill":
        delay = 0.0
    for i, part in enumerate(parts):
        if i == last_chunk and kind == "garbage":
            if common.garbage(behavior) == "shape":
                yield _sse({"candidates": "not a list"})
            else:
                yield b"data: " + common.BROKEN_JSON + b"\r\n\r\n"
            continue
        if i == last_chunk:
            if kind == "cut":
                await asyncio.sleep(delay)
                raise CutConnection("scripted cut")
            yield _sse({"error": {"code": 500, "message": "upstream exploded", "status": "INTERNAL"}})
            return
        if i:
            await asyncio.sleep(delay)
        candidate: JSON = {"content": {"role": "model", "parts": [part]}, "index": 0}
        running = {**usage, "candidatesTokenCount": min(i + 1, usage["candidatesTokenCount"])}
        if i == len(parts) - 1:
            candidate["finishReason"] = finish
            running = usage
        yield _sse({"candidates": [candidate], "usageMetadata": running, "modelVersion": model})


def create_app(api_key: str = DEFAULT_API_KEY, *, chunk_delay: float = DEFAULT_CHUNK_DELAY) -> Starlette:
    routes = [Route("/v1beta/models/{target:path}", generate, methods=["POST"])]
    return common.fake_app(routes, ScriptedState(api_key, chunk_delay))


def main(argv: list[str] | None = None) -> None:
    common.upstream_main(__doc__, create_app, argv)


if __name__ == "__main__":
    main()
