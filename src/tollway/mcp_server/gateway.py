"""A tool's way into Tollway: its REST API, with the caller's key. A refusal becomes an MCP tool error.

Nothing here knows a price or a balance: the routes answer, and their error envelope (`error.code`,
`error.message`, or Venice's `{"error", "details"}`) becomes the tool error's text, with its HTTP status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

TIMEOUT = httpx2.Timeout(600.0, connect=10.0)


def _message(response: httpx2.Response) -> str:
    """The route's own words: `code: message` from any of Tollway's envelopes, or the status alone."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or ""
        text = str(error.get("message") or "")
        return f"HTTP {response.status_code} {code}: {text}".strip()
    if isinstance(error, str):
        return f"HTTP {response.status_code}: {error}"
    return f"HTTP {response.status_code}"


@dataclass
class Gateway:
    """An HTTP client to Tollway with one caller's key. `client` is made per gateway, closed by `aclose`."""

    base_url: str
    key: str
    transport: httpx2.AsyncBaseTransport | None = None
    _client: httpx2.AsyncClient | None = field(default=None, repr=False)

    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(
                base_url=self.base_url,
                headers={"authorization": f"Bearer {self.key}", "user-agent": "tollway-mcp"},
                transport=self.transport,
                timeout=TIMEOUT,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx2.Response:
        """One REST call; any status but 2xx is a ToolError with the route's message."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.client().request(
                method, path, json=json, params=query or None, files=files, data=data
            )
        except httpx2.HTTPError as exc:
            raise ToolError(f"Tollway did not answer ({type(exc).__name__})") from exc
        if response.status_code >= 300:
            raise ToolError(_message(response))
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.call(method, path, **kwargs)).json()


GatewayFor = Callable[[Context], Gateway]


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the arguments given: None means "not sent", so the route's default applies."""
    return {name: value for name, value in fields.items() if value is not None}


class TollwayMCP(MCPServer):
    """The SDK's server, plus how a tool call reaches Tollway (`gateway_for`: one per transport)."""

    def __init__(self, gateway_for: GatewayFor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gateway_for = gateway_for


@contextlib.asynccontextmanager
async def opened(ctx: Context) -> AsyncIterator[Gateway]:
    """The gateway of this tool call's caller, closed when the call ends."""
    server = ctx.mcp_server
    if not isinstance(server, TollwayMCP):  # pragma: no cover - every tool is registered on one
        raise ToolError("not a Tollway MCP server")
    gateway = server.gateway_for(ctx)
    try:
        yield gateway
    finally:
        await gateway.aclose()
