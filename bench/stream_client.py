"""The client side of bench/streams.py, in a process of its own so it does not share the servers' event loops.

    python bench/stream_client.py stalls --url URL [--key KEY] --concurrency N --duration S \
        --cadence-ms 50 --chunks 40
    python bench/stream_client.py soak --url URL [--key KEY] --concurrency C --duration S

Raw asyncio streams (uvloop if present) and a minimal HTTP/1.1 client, as bench/load.py and for the same
reason: an httpx-class client spends about a millisecond per request and more per chunk, and at hundreds of
streams in one process that time would show up as the very gaps being measured.

stalls: N slots, each streaming chat completions back to back on one keep-alive connection. The slots start
spread over one stream's length, so the N streams do not tick in step, and streams begun in that ramp are not
counted. For every `data:` event the client notes when it arrived; a stream's extra gap is its longest gap
between events less the upstream's cadence, and the stream is stall-free when it ended with `[DONE]` and its
extra gap is at most --stall-ms (50).

soak: C slots, each picking its next call at random (seeded) from: buffered; streamed and read to the end;
a slow reader (a 4 KiB socket receive buffer and stream buffer, 1 KiB reads with pauses, so the server meets back-pressure);
a stream the client closes after three events. Counts and errors by kind.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from load import build_request, percentile

# Servers close idle keep-alive connections (uvicorn after 5 s); a slot whose connection sat idle while it
# made another kind of call opens a new one rather than racing that close.
IDLE_S = 2.0
CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
SOAK_KINDS = ("buffered", "stream", "slow", "cancel")
SOAK_WEIGHTS = (3, 4, 1, 2)


@dataclass
class Head:
    status: int
    chunked: bool
    length: int | None
    keep_alive: bool


@dataclass
class Events:
    """SSE events as they complete: when each `data:` event arrived, and whether `[DONE]` came."""

    times: list[float] = field(default_factory=list)
    done: bool = False
    pending: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        now = time.perf_counter()
        self.pending += data.replace(b"\r\n", b"\n")
        while (end := self.pending.find(b"\n\n")) >= 0:
            event = bytes(self.pending[:end])
            del self.pending[: end + 2]
            if event.startswith(b"data:"):
                self.times.append(now)
                self.done = self.done or event[5:].strip() == b"[DONE]"


async def read_head(reader: asyncio.StreamReader) -> Head:
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    head = Head(int(lines[0].split(b" ", 2)[1]), False, None, True)
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            head.length = int(value)
        elif name == b"transfer-encoding":
            head.chunked = b"chunked" in value.lower()
        elif name == b"connection":
            head.keep_alive = b"close" not in value.lower()
    return head


async def body(reader: asyncio.StreamReader, head: Head) -> AsyncIterator[bytes]:
    """The body piece by piece, as the server's chunks arrive."""
    if head.chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            yield (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")  # the (empty) trailer
    elif head.length is not None:
        yield await reader.readexactly(head.length)
    else:
        head.keep_alive = False
        while data := await reader.read(65536):
            yield data


class Connection:
    def __init__(self, host: str, port: int, small_buffer: bool = False) -> None:
        self.host, self.port, self.small_buffer = host, port, small_buffer
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def send(self, request: bytes) -> tuple[asyncio.StreamReader, Head]:
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_S:
            self.close()
        if self.writer is None:
            if self.small_buffer:  # a slow reader: the kernel holds little, so the server must wait
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
                self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
            else:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        assert self.reader is not None
        self.writer.write(request)
        return self.reader, await read_head(self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def stream_once(connection: Connection, request: bytes) -> tuple[int, Events]:
    reader, head = await connection.send(request)
    events = Events()
    async for data in body(reader, head):
        events.feed(data)
    connection.last_used = time.monotonic()
    if not head.keep_alive:
        connection.close()
    return head.status, events


def ms(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value * 1000, 2)


async def stalls(args: argparse.Namespace) -> dict[str, Any]:
    host, port, request = build_request(args.url, args.key, args.model, True, args.chunks)
    cadence, allowance = args.cadence_ms / 1000, args.stall_ms / 1000
    loop = asyncio.get_running_loop()
    ramp = args.chunks * cadence
    started = loop.time()
    measure_from, stop_at = started + ramp, started + ramp + args.duration
    extra: list[float] = []  # per completed stream: its longest gap less the cadence
    ttfbs: list[float] = []
    errors: Counter[str] = Counter()

    async def slot(delay: float) -> None:
        await asyncio.sleep(delay)
        connection = Connection(host, port)
        while (now := loop.time()) < stop_at:
            counted, begun = now >= measure_from, time.perf_counter()
            try:
                async with asyncio.timeout(args.timeout):
                    status, events = await stream_once(connection, request)
            except (*CONNECTION_ERRORS, TimeoutError) as exc:
                connection.close()
                if counted:
                    errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)  # a refused connection must not spin
                continue
            if not counted:
                continue
            if status != 200 or not events.done:
                errors[f"http_{status}" if status != 200 else "no_done"] += 1
                continue
            gaps = [b - a for a, b in zip(events.times, events.times[1:], strict=False)]
            extra.append(max(0.0, max(gaps, default=0.0) - cadence))
            ttfbs.append(events.times[0] - begun)
        connection.close()

    await asyncio.gather(*(slot(i * ramp / args.concurrency) for i in range(args.concurrency)))
    extra.sort()
    ttfbs.sort()
    stall_free = sum(1 for value in extra if value <= allowance)
    streams = len(extra) + sum(errors.values())
    return {
        "concurrency": args.concurrency,
        "cadence_ms": args.cadence_ms,
        "chunks": args.chunks,
        "stall_ms": args.stall_ms,
        "duration_s": round(loop.time() - measure_from, 2),
        "streams": streams,
        "failed": sum(errors.values()),
        "error_kinds": dict(errors),
        "stall_free": stall_free,
        "stall_free_share": round(stall_free / streams, 4) if streams else None,
        "extra_gap_ms": {"p50": ms(extra, 50), "p99": ms(extra, 99), "max": ms(extra, 100)},
        "ttfb_ms": {"p50": ms(ttfbs, 50), "p99": ms(ttfbs, 99)},
    }


async def soak_call(
    kind: str, connection: Connection, request: bytes, args: argparse.Namespace
) -> str | None:
    """One call of the soak's mix; None when it went as it should, else what went wrong."""
    if kind in ("buffered", "stream"):
        status, events = await stream_once(connection, request)
        if status != 200:
            return f"http_{status}"
        return None if kind == "buffered" or events.done else "no_done"
    reader, head = await connection.send(request)
    if head.status != 200:
        return f"http_{head.status}"
    events = Events()
    unpaused = 0  # bytes read since the slow reader's last pause
    async for data in body(reader, head):
        events.feed(data)
        if kind == "cancel" and len(events.times) >= 3:
            return None  # the caller closes the connection mid-stream
        unpaused += len(data)
        if kind == "slow" and unpaused >= 1024:
            unpaused = 0
            await asyncio.sleep(args.slow_pause_ms / 1000)
    if kind == "cancel":
        return "ended_before_cancel"
    return None if events.done else "no_done"


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    requests = {
        "buffered": build_request(args.url, args.key, args.model, False, 16),
        "stream": build_request(args.url, args.key, args.model, True, args.chunks),
        "slow": build_request(args.url, args.key, args.model, True, args.slow_chunks),
        "cancel": build_request(args.url, args.key, args.model, True, args.slow_chunks),
    }
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + args.duration
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()

    async def slot(index: int) -> None:
        pick = random.Random(index)
        host, port, _ = requests["buffered"]
        keep_alive = Connection(host, port)
        while loop.time() < stop_at:
            kind = pick.choices(SOAK_KINDS, SOAK_WEIGHTS)[0]
            own = kind in ("slow", "cancel")  # a connection of its own, closed after the call
            connection = Connection(host, port, small_buffer=kind == "slow") if own else keep_alive
            calls[kind] += 1
            try:
                async with asyncio.timeout(args.timeout):
                    problem = await soak_call(kind, connection, requests[kind][2], args)
            except (*CONNECTION_ERRORS, TimeoutError) as exc:
                problem = type(exc).__name__
                connection.close()
            if problem:
                errors[f"{kind}:{problem}"] += 1
                await asyncio.sleep(0.01)
            if own:
                connection.close()
        keep_alive.close()

    started = loop.time()
    await asyncio.gather(*(slot(i) for i in range(args.concurrency)))
    return {
        "concurrency": args.concurrency,
        "duration_s": round(loop.time() - started, 2),
        "calls": dict(calls),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["stalls", "soak"])
    parser.add_argument("--url", required=True, help="full URL of the chat completions route")
    parser.add_argument("--key", default=None)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="per call")
    parser.add_argument("--chunks", type=int, default=40, help="content chunks per stream (as max_tokens)")
    parser.add_argument("--cadence-ms", type=float, default=50.0, help="stalls: the upstream's gap")
    parser.add_argument("--stall-ms", type=float, default=50.0, help="stalls: extra gap still stall-free")
    parser.add_argument("--slow-chunks", type=int, default=300, help="soak: chunks of slow/cancelled streams")
    parser.add_argument("--slow-pause-ms", type=float, default=100.0, help="soak: pause after each 1 KiB")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    measure = stalls if arguments.mode == "stalls" else soak
    try:
        import uvloop

        result = uvloop.run(measure(arguments))
    except ImportError:
        result = asyncio.run(measure(arguments))
    print(json.dumps(result), flush=True)
