"""httpx2's client API on aiohttp's connection pool: the transport of every upstream provider call.

Why not httpx2's own pool (httpcore2): on each request it walks its connections and probes every idle one
(`has_expired`), so its cost grows with the pool. Measured side by side (bench/passthrough.py `--client`,
the same relay, 10 ms upstream, one process on 2 cores), httpx2 served 941 requests/s at 64 concurrent
calls and aiohttp 3,683; at 16, 1,140 and 1,238. Tollway's calls spend most of their life outside the
upstream call (admission, settlement), so more of its pool sits idle at each request than a bare relay's.

The providers keep httpx2's API (requests, responses, `aiter_lines`, errors); only the wire work moves.
Modelled on httpx-aiohttp (karpetrosyan/httpx-aiohttp), which needs the original httpx installed and maps a
dropped connection to a connect *timeout*. Here each aiohttp failure becomes the httpx2 error that means
the same thing, so providers/http.py tells a timeout from a refused or dropped connection as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx2

if TYPE_CHECKING:
    import aiohttp


@functools.cache
def _errors() -> tuple[tuple[type[BaseException], type[httpx2.TransportError]], ...]:
    """aiohttp's failures and the httpx2 errors they mean, most specific first: several of these subclass
    others (a proxy failure is a connector error, a connect timeout a server timeout, all ClientErrors).
    aiohttp is imported on first use: the CLI, which never calls an upstream, starts 0.1 s sooner."""
    import aiohttp

    return (
        (aiohttp.ConnectionTimeoutError, httpx2.ConnectTimeout),
        (aiohttp.SocketTimeoutError, httpx2.ReadTimeout),
        (aiohttp.ServerTimeoutError, httpx2.ReadTimeout),
        # aiohttp's `connect` limit: waiting for a pooled connection.
        (asyncio.TimeoutError, httpx2.PoolTimeout),
        (aiohttp.ClientProxyConnectionError, httpx2.ProxyError),
        (aiohttp.ClientHttpProxyError, httpx2.ProxyError),
        (aiohttp.ClientConnectorError, httpx2.ConnectError),
        (aiohttp.ServerDisconnectedError, httpx2.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx2.RemoteProtocolError),
        (aiohttp.ClientResponseError, httpx2.RemoteProtocolError),
        (aiohttp.InvalidURL, httpx2.UnsupportedProtocol),
        (aiohttp.ClientOSError, httpx2.ReadError),
        (aiohttp.ClientError, httpx2.NetworkError),
    )


@contextlib.contextmanager
def _as_httpx2() -> Iterator[None]:
    """An aiohttp failure inside raised as the httpx2 error it means; anything else as it is."""
    try:
        yield
    except Exception as exc:
        for source, target in _errors():
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx2():
            # Whatever has arrived, at once: a stream's events are relayed as they come.
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; an unfinished body closes its connection.
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One aiohttp session, made on first use inside the running event loop (a session belongs to its loop).

    Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as with httpx2's `trust_env`,
    read once per host: aiohttp's own `trust_env` reads the whole environment again on every request."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: httpx2.URL) -> str | None:
        origin = (url.scheme, url.host)
        if origin not in self._proxies:
            proxies = urllib.request.getproxies()
            bypass = bool(urllib.request.proxy_bypass(url.host))  # NO_PROXY
            self._proxies[origin] = None if bypass else proxies.get(url.scheme)
        return self._proxies[origin]

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry
            )
            # httpx2 decodes the body (auto_decompress off) and sets every header itself.
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import aiohttp

        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _as_httpx2():
            response = await self._open().request(
                request.method,
                str(request.url),
                # The body is in hand, so aiohttp sends its length: never httpx2's chunked framing too.
                headers=[
                    (k, v) for k, v in request.headers.multi_items() if k.lower() != "transfer-encoding"
                ],
                data=body or None,
                allow_redirects=False,  # httpx2 follows redirects itself, if asked to
                compress=False,
                proxy=self._proxy(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx2.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
