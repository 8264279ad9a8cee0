"""A tiny SearXNG-shaped search endpoint: ``GET /search?q=…&format=json`` → ``{"query", "results"}``.

Run it as ``python -m tests.fakes.search_upstream --port P``. Results are deterministic in the query;
``GET /_fake/stats`` shows the queries seen, ``POST /_fake/reset`` clears them.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import JSON, FakeState, arg_parser, fake_app, fake_state, serve


class _Queries(FakeState):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def reset(self) -> None:
        self.queries.clear()

    def stats(self) -> JSON:
        return {"queries": self.queries}


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
    fake_state(request).queries.append(query)
    if query.startswith("fail"):
        return JSONResponse({"error": "scripted failure"}, status_code=500)
    return JSONResponse({"query": query, "number_of_results": 3, "results": results_for(query)})


def create_app() -> Starlette:
    return fake_app([Route("/search", search, methods=["GET"])], _Queries(), scriptable=False)


def main(argv: list[str] | None = None) -> None:
    args = arg_parser(__doc__).parse_args(argv)
    serve(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
