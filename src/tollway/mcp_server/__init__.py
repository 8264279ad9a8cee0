"""The MCP server (issue 26): Tollway's public capabilities as MCP tools, on the official `mcp` SDK.

On api's floor, beside `api/` and `console/`, and below nothing it needs: it imports neither. Every tool
is a call to Tollway's own REST routes with the caller's key (`gateway.py`), so a tool call is a REST
call: the same authentication, scope checks, rate limits, holds, settlement, usage rows, access log and
metrics, and nothing is priced or charged here. Two transports carry the same tools (`server.py`):

- stdio (`tollway mcp`, for desktop clients): the gateway is an HTTP client to TOLLWAY_BASE_URL with
  TOLLWAY_API_KEY;
- streamable HTTP at `/mcp` on the server (`http.py`): the request's bearer key is checked, then each
  tool call goes into the same ASGI application in process (no socket, no second port), carrying that
  key and the client's address, through every middleware a REST request passes.

`tools.py` (models, chat, embeddings), `media_tools.py` (images, speech, transcription, video and audio
jobs), `account_tools.py` (balance, usage, and the admin-scope key tools), `resources.py` (the catalog
with prices and the API reference).
"""
