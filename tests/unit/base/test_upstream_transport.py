"""The upstream transport (base/upstream_transport.py) on real sockets: httpx2's API and errors over aiohttp.

Each test runs a tiny raw HTTP server on 127.0.0.1 (asyncio streams), so what goes over the wire, how a
dropped or silent server looks to the providers, and when a streamed chunk arrives are all real.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx2
import pytest

from tollway.base.upstream_transport import AiohttpTransport
from tollway.providers.http import transport_failure

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on a free port; yields its base URL and the request heads it received."""
    heads: list[bytes] = []

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(_Recorder(reader, heads), writer)  # type: ignore[arg-type]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()

    server = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()


class _Recorder:
    """A StreamReader that keeps every request head it reads."""

    def __init__(self, reader: asyncio.StreamReader, heads: list[bytes]) -> None:
        self.reader, self.heads = reader, heads

    async def readuntil(self, separator: bytes) -> bytes:
        data = await self.reader.readuntil(separator)
        if separator == b"\r\n\r\n":
            self.heads.append(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length) if length else b""


def client(base_url: str, read_timeout: float = 5.0) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=base_url,
        transport=AiohttpTransport(max_connections=8, keepalive_expiry=4.0),
        timeout=httpx2.Timeout(read_timeout, connect=2.0),
    )


def answer(body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


async def test_a_request_and_its_answer_go_over_the_wire_as_httpx2_built_them() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(answer(b'{"got":' + body + b"}", b"x-upstream: yes"))
            await writer.drain()

    async with serving(echo) as (url, heads), client(url) as http:
        first = await http.post("/v1/chat", content=b'{"a":1}', headers={"authorization": "Bearer k"})
        second = await http.post("/v1/chat", content=b'{"a":2}')
    assert first.status_code == 200 and first.json() == {"got": {"a": 1}}
    assert second.json() == {"got": {"a": 2}}
    assert first.headers["x-upstream"] == "yes"
    assert first.extensions["http_version"] == b"HTTP/1.1"
    head = heads[0].lower()
    assert head.startswith(b"post /v1/chat http/1.1\r\n")
    assert b"authorization: bearer k\r\n" in head
    assert b"content-length: 7\r\n" in head
    assert b"transfer-encoding" not in head
    assert b"aiohttp" not in head  # httpx2's headers only, none of aiohttp's own
    assert len(heads) == 2


async def test_connections_are_reused() -> None:
    accepted = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        while True:
            await read_request(reader)
            writer.write(answer(b"{}"))
            await writer.drain()

    async with serving(keep_alive) as (url, _), client(url) as http:
        for _ in range(5):
            assert (await http.get("/")).status_code == 200
    assert accepted == 1


async def test_a_gzip_body_is_decoded_by_httpx2() -> None:
    async def zipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(gzip.compress(b'{"ok":true}'), b"content-encoding: gzip"))
        await writer.drain()

    async with serving(zipped) as (url, _), client(url) as http:
        assert (await http.get("/")).json() == {"ok": True}


async def test_streamed_chunks_arrive_as_they_are_sent() -> None:
    release = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"6\r\ndata 1\r\n")
        await writer.drain()
        await release.wait()  # the second chunk only once the client has the first
        writer.write(b"6\r\ndata 2\r\n0\r\n\r\n")
        await writer.drain()

    async with serving(chunked) as (url, _), client(url) as http, http.stream("GET", "/") as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"data 1"
        release.set()
        assert [chunk async for chunk in chunks] == [b"data 2"]


async def test_connection_refused_is_a_connect_error_not_a_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx2.ConnectError) as caught:
            await http.get("/")
    failure = transport_failure("p", caught.value)
    assert not failure.timeout and "ConnectError" in str(failure)


async def test_a_server_closing_without_an_answer_is_a_protocol_error_not_a_timeout() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with serving(hang_up) as (url, _), client(url) as http:
        with pytest.raises(httpx2.RemoteProtocolError) as caught:
            await http.post("/", content=b"{}")
    assert not transport_failure("p", caught.value).timeout


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial')
        await writer.drain()

    async with serving(cut) as (url, _), client(url) as http:
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get("/")


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(silent) as (url, _), client(url, read_timeout=0.3) as http:
        with pytest.raises(httpx2.ReadTimeout) as caught:
            await http.get("/")
    assert transport_failure("p", caught.value).timeout


async def test_the_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"via":"proxy"}'))
        await writer.drain()

    async with serving(proxy) as (proxy_url, heads):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client("http://upstream.example") as http:
            response = await http.get("/v1/models")
    assert response.json() == {"via": "proxy"}
    assert heads[0].startswith(b"GET http://upstream.example/v1/models HTTP/1.1\r\n")


async def test_no_proxy_hosts_are_called_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    async def direct(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"via":"direct"}'))
        await writer.drain()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens: using it would fail
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    async with serving(direct) as (url, heads), client(url) as http:
        response = await http.get("/v1/models")
    assert response.json() == {"via": "direct"}
    assert heads[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
