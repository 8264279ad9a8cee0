"""A fast fake OpenAI-compatible upstream for benchmarks: a raw asyncio HTTP/1.1 server (uvloop if present).

    python bench/upstream.py --port 9100 [--latency-ms 10] [--ttft-ms 10] [--tokens-per-s 500] [--chunks 8]
                             [--chunks-from-max-tokens]

`POST .../chat/completions` answers buffered (after `--latency-ms`) or, with `"stream": true`, as SSE over
chunked transfer encoding: the first chunk after `--ttft-ms`, then `--chunks` content chunks paced at
`--tokens-per-s` (one token per chunk; with `--chunks-from-max-tokens`, as many chunks as the request's
`max_completion_tokens` or `max_tokens` asks, so one upstream serves short and long streams), a usage chunk when `stream_options.include_usage` is set (and
always when `--always-usage`), then `[DONE]`. Both carry `usage`. `GET /health` and `GET /v1/models` answer
at once. Written on raw asyncio protocols, not a framework, so the floor it sets is as low as Python goes:
the systems under test, not this process, should be what saturates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - the bench venvs have orjson

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    _loads = json.loads


class Config:
    def __init__(self, args: argparse.Namespace) -> None:
        self.latency = args.latency_ms / 1000
        self.ttft = args.ttft_ms / 1000
        self.gap = 1 / args.tokens_per_s if args.tokens_per_s > 0 else 0.0
        self.chunks = args.chunks
        self.always_usage = args.always_usage
        self.completion_tokens = args.completion_tokens
        self.chunks_from_max_tokens = args.chunks_from_max_tokens


PROMPT_TOKENS = 12


def _completion(model: str, config: Config) -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "bench " * config.completion_tokens},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": config.completion_tokens,
                "total_tokens": PROMPT_TOKENS + config.completion_tokens,
            },
        }
    )


def _chunk(model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )
    return b"data: " + body + b"\n\n"


def _frame(data: bytes) -> bytes:
    """One chunk of chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        reason,
        content_type,
        len(body),
        body,
    )


class Upstream(asyncio.Protocol):
    def __init__(self, config: Config) -> None:
        self.config = config
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[bytes, bytes, bytes]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.worker = asyncio.get_running_loop().create_task(self.serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            method, path, _ = head[0].split(b" ", 2)
            length = 0
            chunked = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            start = end + 4
            if chunked:
                body, consumed = _dechunk(self.buffer, start)
                if body is None:
                    return
                del self.buffer[:consumed]
            else:
                if len(self.buffer) < start + length:
                    return
                body = bytes(self.buffer[start : start + length])
                del self.buffer[: start + length]
            self.queue.put_nowait((method, path, body))

    async def serve(self) -> None:
        """Requests on one connection are answered in order (HTTP/1.1 keep-alive, pipelining-safe)."""
        transport = self.transport
        assert transport is not None
        while True:
            method, path, body = await self.queue.get()
            if transport.is_closing():
                return
            if method == b"GET":
                if path.endswith(b"/models"):
                    transport.write(
                        _response(200, b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}')
                    )
                else:
                    transport.write(_response(200, b'{"status":"ok"}'))
                continue
            if not path.endswith(b"/chat/completions"):
                transport.write(_response(404, b'{"error":{"message":"not found"}}'))
                continue
            try:
                request = _loads(body)
                model = str(request.get("model") or "gpt-4o-mini")
            except ValueError:
                transport.write(_response(400, b'{"error":{"message":"bad json"}}'))
                continue
            if request.get("stream"):
                options = request.get("stream_options") or {}
                chunks = self.config.chunks
                if self.config.chunks_from_max_tokens:
                    chunks = int(request.get("max_completion_tokens") or request.get("max_tokens") or chunks)
                await self.stream(transport, model, bool(options.get("include_usage")), chunks)
            else:
                if self.config.latency:
                    await asyncio.sleep(self.config.latency)
                transport.write(_response(200, _completion(model, self.config)))

    async def stream(
        self, transport: asyncio.Transport, model: str, include_usage: bool, chunks: int
    ) -> None:
        config = self.config
        created = int(time.time())
        transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        if config.ttft:
            await asyncio.sleep(config.ttft)
        transport.write(_frame(_chunk(model, created, {"role": "assistant", "content": ""})))
        for index in range(chunks):
            if index and config.gap:
                await asyncio.sleep(config.gap)
            transport.write(_frame(_chunk(model, created, {"content": "bench "})))
        transport.write(_frame(_chunk(model, created, {}, "stop")))
        if include_usage or config.always_usage:
            usage = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": chunks,
                    "total_tokens": PROMPT_TOKENS + chunks,
                },
            }
            transport.write(_frame(b"data: " + _dumps(usage) + b"\n\n"))
        transport.write(_frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    """A chunked request body from `buffer[start:]`: (body, bytes consumed) or (None, 0) if incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None, 0
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", position)
            if trailer_end < 0:
                return None, 0
            return bytes(body), trailer_end + 2
        if len(buffer) < position + size + 2:
            return None, 0
        body += buffer[position : position + size]
        position += size + 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=10.0, help="buffered: time before the answer")
    parser.add_argument("--ttft-ms", type=float, default=10.0, help="streamed: time to the first chunk")
    parser.add_argument("--tokens-per-s", type=float, default=500.0, help="streamed: pace of content chunks")
    parser.add_argument("--chunks", type=int, default=8, help="streamed: content chunks per answer")
    parser.add_argument("--completion-tokens", type=int, default=8, help="buffered: tokens in the answer")
    parser.add_argument("--always-usage", action="store_true", help="streamed: usage chunk even unasked")
    parser.add_argument(
        "--chunks-from-max-tokens",
        action="store_true",
        help="streamed: the request's max_tokens sets --chunks",
    )
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    config = Config(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(config), args.host, args.port, backlog=4096)
    print(f"fake upstream on http://{args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    arguments = parse_args()
    try:
        import uvloop

        uvloop.run(main(arguments))
    except ImportError:
        asyncio.run(main(arguments))
