"""A deterministic fake OpenAI-compatible upstream: "the outside world" in Tollway's tests.

Run it as ``python -m tests.fakes.openai_upstream --port P`` from the repo root, or mount
``create_app()`` in-process. Answers depend only on the request, so tests can assert exact
content and token counts: the reply is "echo: " + the last user message, one token per
whitespace-separated word (prompt tokens: words of all messages).

Faults: ``POST /_fake/script {"behaviors": [...]}`` queues behaviors (FIFO, per process); each
authenticated chat/embeddings request pops one (an empty queue means "answer normally"):

- ``{"type": "status", "status": 503, "retry_after": 2, "body": {...}}``: answer that status at once.
- ``{"type": "delay_first_byte", "seconds": S}``: sleep before the headers, then answer normally.
- ``{"type": "cut", "after_chunks": N}``: stream N chunks, then drop the connection mid-body
  (no finish_reason, no [DONE]); a buffered chat answer is dropped halfway through its JSON.
- ``{"type": "error_event", "after_chunks": N}``: stream N chunks, then an ``{"error": ...}`` event.
- ``{"type": "usage", "mode": "last_chunk_with_choices" | "none" | "every_chunk"}``: provider
  quirks; the first and last send usage even when ``stream_options.include_usage`` was not asked.
  ``"none"`` also leaves ``usage`` out of a buffered chat answer and of an embeddings answer.
- ``{"type": "usage", "mode": "exact", "usage": {...}}``: report exactly this ``usage`` object (any
  numbers, any missing fields: partial usage) in a buffered answer, a stream's usage chunk, or an
  embeddings answer, whatever was really produced.

``n`` > 1 answers that many choices (the same words each) and counts their tokens in ``usage``.
- ``{"type": "slow", "delay": S}``: seconds between streamed chunks for this request.
- ``{"type": "reply", "chunks": ["<thi", "nk>…"]}``: answer exactly these content pieces, one
  stream chunk each (tags split across chunks, as reasoning models do); buffered: joined.
  Optional: ``"tool_call": "<function name>"`` sends the pieces as that one tool call's
  ``function.arguments`` instead of content (finish_reason "tool_calls"); ``"function_call": "<name>"``
  sends them as the legacy ``function_call.arguments`` (finish_reason "function_call");
  ``"reasoning": true`` as ``reasoning_content`` with no content (a reasoning model's thinking);
  ``"omit_usage": true`` sends no ``usage`` at all. All default off: a plain ``reply`` is unchanged.

- ``{"type": "fill", "uncapped": 2024}``: answer exactly as many tokens as the request's cap
  (``max_completion_tokens`` or ``max_tokens``), or ``uncapped`` (default 2024) when it sent none, as a
  real model does that never stops on its own; streamed 64 words a chunk, finish_reason "length".
- ``{"type": "empty"}``: a stream that is only ``data: [DONE]``: no chunk, no usage (stream-only).
- ``{"type": "images", "count": K}``: an images answer with exactly K images, whatever ``n`` asked.
- ``{"type": "garbage", "what": "json" | "shape" | "base64" | "image", "after_chunks": N}``: an answer
  that cannot be read. Chat: a body cut inside its JSON ("json"), or choices in the wrong shape
  ("shape"); streamed, N good chunks, then a data line that is not JSON ("json") or a chunk in the
  wrong shape ("shape"). Embeddings: broken JSON, a vector that is broken base64 ("base64") or an
  object ("shape"). Images: broken JSON, broken base64, or base64 of bytes that are no image ("image").

``POST /v1/images/generations`` answers ``n`` 8×8 PNGs as ``b64_json``; ``POST /v1/audio/speech`` streams
audio/mpeg bytes (a ``reply`` behavior's ``chunks`` instead; ``[]`` is a 200 with no audio).

Stream-only behaviors are ignored by embeddings and (except cut) by buffered chat.
``POST /_fake/reset`` clears queue and stats; ``GET /_fake/stats`` shows calls and bodies seen.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes import common, openai_legacy, openai_native
from tests.fakes.common import DEFAULT_API_KEY, DEFAULT_CHUNK_DELAY, JSON, CutConnection, ScriptedState

# A fixed timestamp keeps whole responses byte-for-byte reproducible.
CREATED = 1_700_000_000
MODELS = ("gpt-4o-mini", "text-embedding-3-small")
DEFAULT_EMBEDDING_DIMS = 8
MAX_EMBEDDING_DIMS = 3072  # text-embedding-3-large's


def _error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "code": code}}, status_code=status)


def _message_text(message: JSON) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: only the text ones carry words
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _sse(payload: JSON | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _embedding(text: str, dims: int) -> list[float]:
    # shake_256 gives any length, and a shorter digest is a prefix of a longer one, so
    # `dimensions` truncates the default vector exactly as the real API's Matryoshka models do.
    raw = hashlib.shake_256(text.encode()).digest(4 * dims)
    values = [u / 2**32 * 2 - 1 for u in struct.unpack(f"<{dims}I", raw)]
    # Round through float32 so the "float" and "base64" encodings carry identical numbers.
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *values)))


def _check_key(request: Request) -> Response | None:
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
    if key == common.fake_state(request).api_key:
        return None
    # Echoing the key is deliberate: Tollway's tests use it to prove Tollway never relays this text.
    return _error(401, f"Incorrect API key provided: {key}", "invalid_request_error", "invalid_api_key")


async def _begin(request: Request, kind: str) -> tuple[JSON, JSON] | Response:
    """Authenticate, parse, record and pop the scripted behavior shared by chat and embeddings."""
    state: ScriptedState = common.fake_state(request)
    if denied := _check_key(request):
        return denied
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "Request body is not valid JSON", "invalid_request_error")
    if not isinstance(body, dict):
        return _error(400, "Request body must be a JSON object", "invalid_request_error")
    if traceparent := request.headers.get("traceparent"):  # a tracing gateway propagates its trace
        body = {**body, "_traceparent": traceparent}
    if sent := {k: v for k, v in request.headers.items() if k.startswith("x-test-")}:
        body = {**body, "_headers": sent}  # a catalog's provider `headers`, seen arriving
    behavior = await state.take(kind, body)
    if scripted := common.scripted_status(behavior):
        status, headers = scripted
        message = common.status_message(behavior)
        default = {"error": {"message": message, "type": "server_error", "code": None}}
        return JSONResponse(behavior.get("body", default), status_code=status, headers=headers)
    return body, behavior


@dataclass
class _Reply:
    id: str
    model: str
    words: list[str]
    finish: str
    prompt_tokens: int
    choices: int = 1
    reported: JSON | None = None  # a scripted `usage` object ("exact" mode) replaces the counts

    def usage(self, completion: int | None = None) -> JSON:
        if self.reported is not None:
            return dict(self.reported)
        done = (len(self.words) if completion is None else completion) * self.choices
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def envelope(self, obj: str, choices: list[JSON]) -> JSON:
        return {"id": self.id, "object": obj, "created": CREATED, "model": self.model, "choices": choices}


async def chat_completions(request: Request) -> Response:
    begun = await _begin(request, "chat")
    if isinstance(begun, Response):
        return begun
    body, behavior = begun
    state: ScriptedState = common.fake_state(request)
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user = next((_message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    words = ("echo: " + last_user).split()
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    finish = "stop"
    if isinstance(limit, int) and len(words) > limit:
        words, finish = words[:limit], "length"
    prompt_tokens = sum(len(_message_text(m).split()) for m in messages)
    n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 1 else 1
    reply = _Reply(
        f"chatcmpl-fake-{state.calls['chat']}",
        body.get("model", MODELS[0]),
        words,
        finish,
        prompt_tokens,
        n,
        behavior.get("usage") if _usage_mode(behavior) == "exact" else None,
    )
    if behavior["type"] == "reply":
        return _scripted_reply(reply, body, [str(p) for p in behavior["chunks"]], behavior)
    filled = common.fill_words(behavior, limit)
    if filled is not None:
        reply.words, reply.finish = filled, "length"
        return _scripted_reply(reply, body, common.pieces_of(filled), behavior, completion=len(filled))
    broken = common.garbage(behavior)
    if broken is not None and body.get("stream"):
        return StreamingResponse(_garbage_stream(reply, behavior), media_type="text/event-stream")
    if broken is not None:
        if broken == "shape":
            return JSONResponse(reply.envelope("chat.completion", [{"index": 0, "message": "x"}]))
        return Response(common.BROKEN_JSON, media_type="application/json")
    if body.get("stream") and behavior["type"] == "empty":
        return StreamingResponse(iter([_sse("[DONE]")]), media_type="text/event-stream")
    if body.get("stream"):
        chunks = _stream_chat(reply, body, behavior, state.chunk_delay_for(behavior))
        return StreamingResponse(
            chunks, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    message = {"role": "assistant", "content": " ".join(words)}
    answer = reply.envelope(
        "chat.completion", [{"index": i, "message": message, "finish_reason": finish} for i in range(n)]
    )
    if _usage_mode(behavior) != "none":
        answer["usage"] = reply.usage()
    if behavior["type"] == "cut":  # a buffered answer dies halfway through its JSON body
        return StreamingResponse(_truncated(json.dumps(answer).encode()), media_type="application/json")
    return JSONResponse(answer)


def _scripted_reply(
    reply: _Reply, body: JSON, pieces: list[str], behavior: JSON, completion: int | None = None
) -> Response:
    usage = (
        None if behavior.get("omit_usage") else reply.usage(len(pieces) if completion is None else completion)
    )
    tool = behavior.get("tool_call")
    legacy = behavior.get("function_call")
    if tool or legacy:
        finish = "tool_calls" if tool else "function_call"
    else:
        finish = reply.finish if behavior["type"] == "fill" else "stop"
    if not body.get("stream"):
        message: JSON = {"role": "assistant", "content": "".join(pieces)}
        if tool:
            call = {
                "id": "call_fake_0",
                "type": "function",
                "function": {"name": tool, "arguments": "".join(pieces)},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
        elif legacy:
            message = {
                "role": "assistant",
                "content": None,
                "function_call": {"name": legacy, "arguments": "".join(pieces)},
            }
        elif behavior.get("reasoning"):
            message = {"role": "assistant", "content": None, "reasoning_content": "".join(pieces)}
        answer = reply.envelope(
            "chat.completion", [{"index": 0, "message": message, "finish_reason": finish}]
        )
        return JSONResponse(answer if usage is None else {**answer, "usage": usage})

    def delta(i: int, piece: str) -> JSON:
        if legacy:
            named = {"name": legacy, "arguments": piece} if i == 0 else {"arguments": piece}
            return (
                {"role": "assistant", "content": None, "function_call": named}
                if i == 0
                else {"function_call": named}
            )
        if behavior.get("reasoning"):
            return (
                {"role": "assistant", "reasoning_content": piece} if i == 0 else {"reasoning_content": piece}
            )
        if not tool:
            return {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        call: JSON = {"index": 0, "function": {"arguments": piece}}
        if i == 0:  # the first delta of a tool call names it, as OpenAI's do
            call = {
                "index": 0,
                "id": "call_fake_0",
                "type": "function",
                "function": {"name": tool, "arguments": piece},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"tool_calls": [call]}

    async def frames() -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            reason = finish if i == len(pieces) - 1 else None
            yield _sse(
                reply.envelope(
                    "chat.completion.chunk", [{"index": 0, "delta": delta(i, piece), "finish_reason": reason}]
                )
            )
        if usage is not None:
            yield _sse({**reply.envelope("chat.completion.chunk", []), "usage": usage})
        yield _sse("[DONE]")

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _usage_mode(behavior: JSON) -> str | None:
    return str(behavior.get("mode")) if behavior["type"] == "usage" else None


async def _truncated(data: bytes) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    raise CutConnection("scripted cut")


async def _stream_chat(reply: _Reply, body: JSON, behavior: JSON, delay: float) -> AsyncIterator[bytes]:
    kind = behavior["type"]
    usage_mode = behavior.get("mode") if kind == "usage" else "separate"
    if usage_mode == "exact":  # the scripted numbers, sent the way OpenAI sends usage
        usage_mode, include_usage_forced = "separate", True
    else:
        include_usage_forced = False
    options = body.get("stream_options")
    include_usage = include_usage_forced or (
        isinstance(options, dict) and options.get("include_usage") is True
    )
    last_chunk = common.stop_after(behavior)
    pieces = reply.words or [""]  # an empty reply still needs one chunk to carry role and finish_reason
    for i, word in enumerate(pieces):
        if i == last_chunk:
            break
        delta: JSON = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
        last = i == len(pieces) - 1
        # A cut stream must never look finished, even when cut after its last word.
        reason = reply.finish if last and kind != "cut" else None
        chunk = reply.envelope(
            "chat.completion.chunk",
            [{"index": c, "delta": delta, "finish_reason": reason} for c in range(reply.choices)],
        )
        if usage_mode == "every_chunk":  # running totals: only the last one is the true count
            chunk["usage"] = reply.usage(min(i + 1, len(reply.words)))
        elif usage_mode == "last_chunk_with_choices" and last:
            chunk["usage"] = reply.usage()
        elif usage_mode == "separate" and include_usage:
            chunk["usage"] = None  # what OpenAI puts on every other chunk once usage is asked for
        if i:
            await asyncio.sleep(delay)
        yield _sse(chunk)
    if kind == "cut":
        await asyncio.sleep(delay)  # lets the client see the last chunk arrive before the drop
        raise CutConnection("scripted cut")
    if kind == "error_event":
        yield _sse({"error": {"message": "upstream exploded", "type": "server_error"}})
        return
    if usage_mode == "separate" and include_usage:
        yield _sse({**reply.envelope("chat.completion.chunk", []), "usage": reply.usage()})
    yield _sse("[DONE]")


async def _garbage_stream(reply: _Reply, behavior: JSON) -> AsyncIterator[bytes]:
    """`after_chunks` good chunks, then one that cannot be read, then [DONE] as if all were well."""
    for i, word in enumerate(reply.words[: common.stop_after(behavior)]):
        delta: JSON = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
        yield _sse(
            reply.envelope("chat.completion.chunk", [{"index": 0, "delta": delta, "finish_reason": None}])
        )
    if common.garbage(behavior) == "shape":
        yield _sse(reply.envelope("chat.completion.chunk", [{"index": 0, "delta": "not an object"}]))
    else:
        yield b"data: " + common.BROKEN_JSON + b"\n\n"
    yield _sse("[DONE]")


async def embeddings(request: Request) -> Response:
    begun = await _begin(request, "embeddings")
    if isinstance(begun, Response):
        return begun
    body, behavior = begun
    raw = body.get("input", "")
    # Token-array inputs are valid in the real API; stringifying them keeps them deterministic.
    texts = [raw] if isinstance(raw, str) else [t if isinstance(t, str) else str(t) for t in raw]
    dims = int(body.get("dimensions") or DEFAULT_EMBEDDING_DIMS)
    if not 1 <= dims <= MAX_EMBEDDING_DIMS:  # as OpenAI does, rather than build a vector of any size
        return _error(
            400, f"Invalid 'dimensions': must be 1 to {MAX_EMBEDDING_DIMS}.", "invalid_request_error"
        )
    data = []
    for index, text in enumerate(texts):
        vector = _embedding(text, dims)
        encoded: list[float] | str = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    broken = common.garbage(behavior)
    if broken == "json":
        return Response(common.BROKEN_JSON, media_type="application/json")
    if broken is not None:
        data[0]["embedding"] = "@@not-base64@@" if broken == "base64" else {"not": "a vector"}
    tokens = sum(len(t.split()) for t in texts)
    answer: JSON = {"object": "list", "data": data, "model": body.get("model", MODELS[1])}
    mode = _usage_mode(behavior)
    if mode == "exact":
        answer["usage"] = behavior.get("usage")
    elif mode != "none":
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse(answer)


def _png() -> bytes:
    # A valid 8×8 RGB PNG, built by hand so the fake needs no imaging library.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * 8 for _ in range(8))
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def images(request: Request) -> Response:
    begun = await _begin(request, "images")
    if isinstance(begun, Response):
        return begun
    body, behavior = begun
    n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 1 else 1
    if behavior["type"] == "images":
        n = int(behavior["count"])
    image = base64.b64encode(_png()).decode()
    broken = common.garbage(behavior)
    if broken == "json":
        return Response(common.BROKEN_JSON, media_type="application/json")
    if broken == "base64":
        image = "@@not-base64@@"
    elif broken == "image":
        image = base64.b64encode(b"these bytes are not an image").decode()
    data: JSON | list[JSON] = [{"b64_json": image} for _ in range(n)]
    if broken == "shape":
        data = {"b64_json": image}
    return JSONResponse({"created": CREATED, "data": data})


async def speech(request: Request) -> Response:
    """Audio/mpeg bytes, streamed in pieces: 4 KiB of MP3-like bytes, or a `reply` behavior's `chunks`
    (strings, sent as bytes; `[]` is a 200 with no audio at all)."""
    begun = await _begin(request, "speech")
    if isinstance(begun, Response):
        return begun
    _, behavior = begun
    pieces = (
        [str(c).encode() for c in behavior["chunks"]]
        if behavior["type"] == "reply"
        else [b"ID3" + bytes(4093)]
    )

    async def audio() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return StreamingResponse(audio(), media_type="audio/mpeg")


async def models(request: Request) -> Response:
    if denied := _check_key(request):
        return denied
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in MODELS]
    return JSONResponse({"object": "list", "data": data})


def create_app(api_key: str = DEFAULT_API_KEY, *, chunk_delay: float = DEFAULT_CHUNK_DELAY) -> Starlette:
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/images/generations", images, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        *openai_legacy.routes(_begin),  # /v1/completions, /v1/moderations
        *openai_native.routes(_begin, _png),  # /v1/responses (and the other natively served routes)
    ]
    return common.fake_app(routes, ScriptedState(api_key, chunk_delay))


def main(argv: list[str] | None = None) -> None:
    common.upstream_main(__doc__, create_app, argv)


if __name__ == "__main__":
    main()
