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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tollway.mcp_server.gateway import Gateway
from tollway.mcp_server.server import build

PATH = "/mcp"
Check = Callable[[Request], Awaitable[Response | None]]  # None: the key is good; else the refusal


def _bearer(headers: Any) -> str:
    scheme, _, token = str(headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class _Guarded:
    """The SDK's ASGI endpoint behind the key check."""

    def __init__(self, inner: ASGIApp, check: Check) -> None:
        self.inner, self.check = inner, check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = await self.check(Request(scope, receive))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.inner(scope, receive, send)


def in_process(app: ASGIApp) -> Callable[[Context], Gateway]:
    """Tool calls into `app` itself, as the MCP request's caller: its key, its address, its host."""

    def gateway_for(ctx: Context) -> Gateway:
        request = ctx.request_context.request
        if not isinstance(request, Request):  # pragma: no cover - /mcp always has one
            raise RuntimeError("an /mcp tool call without its HTTP request")
        client = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
        transport = httpx2.ASGITransport(app=app, client=client)
        base = str(request.base_url).rstrip("/")
        return Gateway(base, _bearer(request.headers), transport=transport)

    return gateway_for


def route(app: ASGIApp, check: Check, max_body: int) -> tuple[Route, StreamableHTTPSessionManager]:
    """The `/mcp` route for `app`, and its session manager, which `app`'s lifespan must run.
    `max_body`: the largest JSON-RPC body (api/limits.py, MCP_BODY_BYTES, bounds it first)."""
    server = build(in_process(app))
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=max_body,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    endpoint = _Guarded(StreamableHTTPASGIApp(manager), check)
    return Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False), manager
