"""A tiny SearXNG-shaped search endpoint: ``GET /search?q=…&format=json`` → ``{"query", "results"}``.

Run it as ``python -m tests.fakes.search_upstream --port P``. Results are deterministic in the query;
``GET /_fake/stats`` shows the queries seen, ``POST /_fake/reset`` clears them.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def results_for(query: str) -> list[dict[str, Any]]:
    return [
        {
            "title": f"Result {i} for {query}",
            "url": f"https://search.example/{i}",
            "content": f"Snippet {i} about {query}.",
            "publishedDate": "2024-08-13T13:45:16",
            "engine": "fake",
        }
        for i in range(3)
    ]


async def search(request: Request) -> Response:
    query = request.query_params.get("q", "")
    if request.query_params.get("format") != "json":
        return JSONResponse({"error": "format=json is required"}, status_code=400)
    request.app.state.queries.append(query)
    if query.startswith("fail"):
        return JSONResponse({"error": "scripted failure"}, status_code=500)
    return JSONResponse({"query": query, "number_of_results": 3, "results": results_for(query)})


async def stats(request: Request) -> Response:
    return JSONResponse({"queries": request.app.state.queries})


async def reset(request: Request) -> Response:
    request.app.state.queries.clear()
    return JSONResponse({"ok": True})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/search", search, methods=["GET"]),
            Route("/_fake/stats", stats, methods=["GET"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/health", health, methods=["GET"]),
        ]
    )
    app.state.queries = []
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
