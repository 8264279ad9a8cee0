"""Load generator: N keep-alive connections, each sending chat calls back to back for a fixed time.

    python bench/load.py --url http://127.0.0.1:8000/v1/chat/completions --key KEY \
        --concurrency 64 --duration 10 [--stream] [--warmup 1] [--model gpt-4o-mini]

Its own process, on raw asyncio streams (uvloop if present) with a minimal HTTP/1.1 client (Content-Length and
chunked bodies), so the client costs far less CPU than any system it measures (an httpx-class client costs
~1 ms per request, as much as the gateway under test). Prints one JSON object: requests, errors (by kind),
throughput, latency percentiles and, for streams, the time to the first `data:` byte (TTFB). Requests that
start during `--warmup` are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def call(self, request: bytes) -> tuple[int, float | None, bool]:
        """Send one request, read the whole response: (status, seconds to first `data:` byte, keep-alive)."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = b"close" not in value.lower()
        first_data: float | None = None
        if chunked:
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # the (empty) trailer
                    break
                data = await self.reader.readexactly(size + 2)
                if first_data is None and b"data:" in data:
                    first_data = time.perf_counter() - started
        elif length is not None:
            data = await self.reader.readexactly(length)
            if first_data is None and b"data:" in data:
                first_data = time.perf_counter() - started
        else:  # no length: the body ends with the connection
            data = await self.reader.read()
            keep_alive = False
        return status, first_data, keep_alive


def build_request(
    url: str, key: str | None, model: str, stream: bool, max_tokens: int
) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something short for the benchmark."}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body).encode()
    headers = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        "accept: */*",
        f"content-length: {len(payload)}",
    ]
    if key:
        headers.append(f"authorization: Bearer {key}")
    return host, port, ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def run(args: argparse.Namespace) -> dict[str, Any]:
    host, port, request = build_request(args.url, args.key, args.model, args.stream, args.max_tokens)
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    measure_from = started + args.warmup
    stop_at = measure_from + args.duration

    async def worker() -> None:
        connection = Connection(host, port)
        while (now := loop.time()) < stop_at:
            counted = now >= measure_from
            begun = time.perf_counter()
            try:
                async with asyncio.timeout(args.timeout):
                    status, first_data, keep_alive = await connection.call(request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                connection.close()
                if counted:
                    errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)  # a refused connection must not spin
                continue
            except TimeoutError:
                connection.close()
                if counted:
                    errors["timeout"] += 1
                continue
            elapsed = time.perf_counter() - begun
            if not keep_alive:
                connection.close()
            if not counted:
                continue
            if status != 200:
                errors[f"http_{status}"] += 1
                continue
            latencies.append(elapsed)
            if first_data is not None:
                ttfbs.append(first_data)
        connection.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    wall = loop.time() - measure_from  # includes the tail of calls that began before stop_at
    latencies.sort()
    ttfbs.sort()
    total = len(latencies) + sum(errors.values())

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 3)

    return {
        "concurrency": args.concurrency,
        "stream": args.stream,
        "duration_s": round(wall, 3),
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_rate": round(sum(errors.values()) / total, 5) if total else 0.0,
        "rps": round(len(latencies) / wall, 2) if wall > 0 else 0.0,
        "latency_ms": {f"p{q}": ms(latencies, q) for q in (50, 90, 95, 99)}
        | {
            "max": ms(latencies, 100),
            "mean": round(sum(latencies) / len(latencies) * 1000, 3) if latencies else None,
        },
        "ttfb_ms": {f"p{q}": ms(ttfbs, q) for q in (50, 95, 99)} if args.stream else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="full URL of the chat completions route")
    parser.add_argument("--key", default=None)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    try:
        import uvloop

        result = uvloop.run(run(arguments))
    except ImportError:
        result = asyncio.run(run(arguments))
    print(json.dumps(result), flush=True)
