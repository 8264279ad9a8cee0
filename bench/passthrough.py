"""The ceiling for a Python gateway: Starlette + httpx2 on its own pool, no auth, no billing.

    python bench/passthrough.py --port 9200 --upstream http://127.0.0.1:9100 [--client httpx2|aiohttp] [--server uvicorn|granian]

`--client` and `--server` measure the parts side by side (issue 20 step 4): the same relay with aiohttp's
client instead of httpx2's, or served by granian (Rust, its own HTTP/1.1) instead of uvicorn.

`POST /v1/chat/completions` forwards the body bytes to the upstream and relays the answer: buffered as one
body, streamed (`"stream": true`) chunk by chunk. It parses the request JSON once, as any gateway must to
know whether to stream. Served by uvicorn with uvloop and httptools, access log off: the same server stack
and process count as `tollway serve`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def create_app(upstream: str, client: str = "httpx2") -> Starlette:
    relay = _AiohttpRelay(upstream) if client == "aiohttp" else _Httpx2Relay(upstream)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/v1/chat/completions", relay.chat, methods=["POST"]), Route("/health", health)],
        lifespan=relay.lifespan,
    )


_HEADERS = {"content-type": "application/json", "authorization": "Bearer upstream-secret"}


class _Httpx2Relay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        # The same pool limits as Tollway's provider client (providers/http.py).
        self.client = httpx2.AsyncClient(
            base_url=self.upstream,
            timeout=httpx2.Timeout(600, connect=10.0),
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=128),
            trust_env=False,
        )
        yield
        await self.client.aclose()

    async def chat(self, request: Request) -> Response:
        body = await request.body()
        if orjson.loads(body).get("stream"):
            upstream_request = self.client.build_request(
                "POST", "/v1/chat/completions", content=body, headers=_HEADERS
            )
            response = await self.client.send(upstream_request, stream=True)
            return StreamingResponse(
                response.aiter_raw(),
                status_code=response.status_code,
                media_type="text/event-stream",
                background=BackgroundTask(response.aclose),
            )
        response = await self.client.post("/v1/chat/completions", content=body, headers=_HEADERS)
        return Response(response.content, status_code=response.status_code, media_type="application/json")


class _AiohttpRelay:
    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/v1/chat/completions"

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=512, limit_per_host=512, keepalive_timeout=4.0)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=600, connect=10.0)
        )
        yield
        await self.session.close()

    async def chat(self, request: Request) -> Response:
        body = await request.body()
        response = await self.session.post(self.url, data=body, headers=_HEADERS)
        if orjson.loads(body).get("stream"):
            return StreamingResponse(
                response.content.iter_any(),
                status_code=response.status,
                media_type="text/event-stream",
                background=BackgroundTask(response.release),
            )
        content = await response.read()
        response.release()
        return Response(content, status_code=response.status, media_type="application/json")


def app_from_env() -> Starlette:
    """granian imports the app by name: the upstream and client come from the environment."""
    return create_app(os.environ["PASSTHROUGH_UPSTREAM"], os.environ.get("PASSTHROUGH_CLIENT", "httpx2"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, without /v1")
    parser.add_argument("--client", choices=["httpx2", "aiohttp"], default="httpx2")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args()
    if args.server == "granian":
        from granian import Granian

        os.environ["PASSTHROUGH_UPSTREAM"], os.environ["PASSTHROUGH_CLIENT"] = args.upstream, args.client
        sys.path.insert(0, str(Path(__file__).parent))
        Granian(
            "passthrough:app_from_env",
            factory=True,
            address=args.host,
            port=args.port,
            interface="asgi",
            loop="uvloop",
            http="1",
            workers=1,
            log_access=False,
        ).serve()
        return
    uvicorn.run(
        create_app(args.upstream, args.client),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
