"""The MCP server, built once per transport: the tools and resources, and how they reach Tollway.

`stdio_server` (`tollway mcp`): an HTTP client to TOLLWAY_BASE_URL with TOLLWAY_API_KEY.
`http.py` builds the `/mcp` one, whose gateway calls the application in process.
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import Context

from tollway import __version__
from tollway.mcp_server import account_tools, media_tools, resources, tools
from tollway.mcp_server.gateway import Gateway, GatewayFor, TollwayMCP

INSTRUCTIONS = (
    "Tollway is an AI API gateway with prepaid balances. Every tool calls Tollway's REST API with your "
    "key and is charged exactly as that route is: `cost_usd` in an answer is what the ledger charged. "
    "Use list_models to find model ids and prices; balance and usage show what you spent. The key tools "
    "need an admin-scope key."
)


def build(gateway_for: GatewayFor) -> TollwayMCP:
    server = TollwayMCP(gateway_for, name="tollway", version=__version__, instructions=INSTRUCTIONS)
    for tool in (*tools.TOOLS, *media_tools.TOOLS, *account_tools.TOOLS):
        server.add_tool(tool)
    for uri, name, mime_type, read in resources.RESOURCES:
        server.resource(uri, name=name, mime_type=mime_type, description=read.__doc__)(read)
    return server


def stdio_server(base_url: str | None = None, key: str | None = None) -> TollwayMCP:
    """For `tollway mcp`: the environment's TOLLWAY_BASE_URL (default http://127.0.0.1:8000) and TOLLWAY_API_KEY."""
    url = (base_url or os.environ.get("TOLLWAY_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
    secret = key or os.environ.get("TOLLWAY_API_KEY") or ""
    if not secret:
        raise ValueError("set TOLLWAY_API_KEY to the Tollway key the MCP tools call with")

    def gateway_for(_: Context) -> Gateway:
        return Gateway(url, secret)

    return build(gateway_for)
