"""The ceiling for a Python gateway: Starlette + httpx2 (Tollway's HTTP client), no auth, no billing.

    python bench/passthrough.py --port 9200 --upstream http://127.0.0.1:9100

`POST /v1/chat/completions` forwards the body bytes to the upstream and relays the answer: buffered as one
body, streamed (`"stream": true`) chunk by chunk. It parses the request JSON once, as any gateway must to
know whether to stream. Served by uvicorn with uvloop and httptools, access log off: the same server stack
and process count as `tollway serve`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def create_app(upstream: str) -> Starlette:
    state: dict[str, httpx2.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # The same pool limits as Tollway's provider client (providers/http.py).
        state["client"] = httpx2.AsyncClient(
            base_url=upstream,
            timeout=httpx2.Timeout(600, connect=10.0),
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=128),
            trust_env=False,
        )
        yield
        await state["client"].aclose()

    async def chat(request: Request) -> Response:
        body = await request.body()
        client = state["client"]
        headers = {"content-type": "application/json", "authorization": "Bearer upstream-secret"}
        if orjson.loads(body).get("stream"):
            upstream_request = client.build_request(
                "POST", "/v1/chat/completions", content=body, headers=headers
            )
            response = await client.send(upstream_request, stream=True)
            return StreamingResponse(
                response.aiter_raw(),
                status_code=response.status_code,
                media_type="text/event-stream",
                background=BackgroundTask(response.aclose),
            )
        response = await client.post("/v1/chat/completions", content=body, headers=headers)
        return Response(response.content, status_code=response.status_code, media_type="application/json")

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, without /v1")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
