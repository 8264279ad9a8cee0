"""`/mcp`: the MCP server over streamable HTTP, on Tollway's own application.

A request must carry a valid key (`Authorization: Bearer`, checked by the same `keys.authenticate` the
REST routes use; a refusal is the REST route's 401/403 in the same envelope). Then each tool call
enters the application in process, through an `httpx2.ASGITransport` on the very ASGI app that serves
/v1 — every middleware, the routes' scope checks, rate limits, holds and settlement — with the caller's
key and address. So an MCP call is metered and limited exactly once, by the one pipeline, and there is no
loopback socket or port to configure.

Stateless sessions (`stateless_http`): any worker of `serve --workers N`, or any replica, answers any
request. DNS-rebinding protection is off: it guards local servers without credentials, and every
request here carries a key that a rebinding page does not have.

The MCP SDK is loaded and the server built on the first /mcp request that passes the key check, not
at start: importing it is about 0.4 s of CPU, a sixth of a server's start, and most processes never
serve /mcp. Its session manager then runs in a task of its own until the application stops.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from tollway.mcp_server.gateway import Gateway

PATH = "/mcp"
Check = Callable[[Request], Awaitable[Response | None]]  # None: the key is good; else the refusal


def _bearer(headers: Any) -> str:
    scheme, _, token = str(headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def in_process(app: ASGIApp) -> Callable[[Context], Gateway]:
    """Tool calls into `app` itself, as the MCP request's caller: its key, its address, its host."""
    from tollway.mcp_server.gateway import Gateway

    def gateway_for(ctx: Context) -> Gateway:
        request = ctx.request_context.request
        if not isinstance(request, Request):  # pragma: no cover - /mcp always has one
            raise RuntimeError("an /mcp tool call without its HTTP request")
        client = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
        transport = httpx2.ASGITransport(app=app, client=client)
        base = str(request.base_url).rstrip("/")
        return Gateway(base, _bearer(request.headers), transport=transport)

    return gateway_for


class McpEndpoint:
    """`/mcp`: the key check, then the SDK's endpoint, built and started on first use."""

    def __init__(self, app: ASGIApp, check: Check, max_body: int) -> None:
        self.app, self.check, self.max_body = app, check, max_body
        self._endpoint: asyncio.Future[ASGIApp] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = await self.check(Request(scope, receive))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self._endpoint is None:
            self._endpoint = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            # A fresh context: the sessions' tasks must not inherit this first request's variables.
            self._runner = asyncio.create_task(
                self._run(self._endpoint, self._stop), context=contextvars.Context()
            )
        endpoint = await asyncio.shield(self._endpoint)
        await endpoint(scope, receive, send)

    async def _run(self, endpoint: asyncio.Future[ASGIApp], stop: asyncio.Event) -> None:
        """Build the server and run its session manager (an anyio task group, entered and left in
        this one task) until `aclose`."""
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
            from mcp.server.transport_security import TransportSecuritySettings

            from tollway.mcp_server.server import build

            server = build(in_process(self.app))
            server.streamable_http_app(
                stateless_http=True,
                json_response=True,
                max_request_body_size=self.max_body,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
            manager = server.session_manager
            async with manager.run():
                endpoint.set_result(StreamableHTTPASGIApp(manager))
                await stop.wait()
        except BaseException as exc:
            if not endpoint.done():
                endpoint.set_exception(exc)
            raise

    async def aclose(self) -> None:
        """Stop the session manager, if it was started (the application's lifespan ends)."""
        if self._runner is not None and self._stop is not None:
            self._stop.set()
            await asyncio.gather(self._runner, return_exceptions=True)


def route(app: ASGIApp, check: Check, max_body: int) -> tuple[Route, McpEndpoint]:
    """The `/mcp` route for `app`, and its endpoint, which `app`'s lifespan must close.
    `max_body`: the largest JSON-RPC body (api/limits.py, MCP_BODY_BYTES, bounds it first)."""
    endpoint = McpEndpoint(app, check, max_body)
    return Route(
        PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False
    ), endpoint
