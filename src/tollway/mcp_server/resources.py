"""Resources: the model catalog with its prices, and the API reference (the routes' own documents).

Resource templates, because reading one is a call with the reader's key (the SDK gives a static
resource no request context): `tollway://catalog/{type}` (all, text, image, ...) and
`tollway://reference/{document}` (llms.txt or llms-full.txt).
"""

from __future__ import annotations

import json

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from tollway.mcp_server.gateway import opened

DOCUMENTS = ("llms.txt", "llms-full.txt")


async def catalog(type: str, ctx: Context) -> str:
    """The models of one type (`all` for every one), with limits and prices in USD (GET /v1/models)."""
    async with opened(ctx) as gateway:
        return json.dumps(await gateway.json("GET", "/v1/models", params={"type": type}), indent=1)


async def reference(document: str, ctx: Context) -> str:
    """The API reference for language models: llms.txt (an index) or llms-full.txt (every route with its
    parameters, errors and an example, then the guide)."""
    if document not in DOCUMENTS:
        raise ResourceError(f"no such document: use one of {', '.join(DOCUMENTS)}")
    async with opened(ctx) as gateway:
        return (await gateway.call("GET", f"/{document}")).text


RESOURCES = (
    ("tollway://catalog/{type}", "catalog", "application/json", catalog),
    ("tollway://reference/{document}", "reference", "text/markdown", reference),
)
