"""The public web, as a forward HTTP proxy sees it: a server given as a Tollway server's HTTP_PROXY
receives every plain-HTTP fetch to a public address (the SSRF-safe fetcher vets the address first, then
its client honours the proxy), so `augment/scrape` can fetch "public" pages offline.

- ``/page`` (any host): a small HTML page titled "Lighthouses";
- ``/big``: an HTML page of 3 MiB, larger than the 2 MiB a scrape reads;
- ``/missing``: 404.

Run it as ``python -m tests.fakes.web_pages --port P``. ``GET /_fake/stats`` lists the pages asked for
(host and path, in order), ``POST /_fake/reset`` clears them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.fakes.common import JSON, FakeState, arg_parser, fake_app, fake_state, serve

PAGE = (
    "<html><head><title>Lighthouses</title></head>"
    "<body><h1>Lighthouses</h1><p>They keep ships off the rocks.</p></body></html>"
)
BIG = "<html><body>" + "x" * (3 * 1024 * 1024) + "</body></html>"


class _Fetches(FakeState):
    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []

    def reset(self) -> None:
        self.fetches.clear()

    def stats(self) -> JSON:
        return {"fetches": self.fetches}


async def page(request: Request) -> Response:
    fake_state(request).fetches.append(f"{request.headers.get('host', '')}{request.url.path}")
    if request.url.path == "/page":
        return HTMLResponse(PAGE)
    if request.url.path == "/big":
        return HTMLResponse(BIG)
    return HTMLResponse("<html><body>Not found</body></html>", status_code=404)


def main(argv: list[str] | None = None) -> None:
    args = arg_parser(__doc__).parse_args(argv)
    routes = [Route(path, page, methods=["GET"]) for path in ("/page", "/big", "/missing")]
    app = fake_app(routes, _Fetches(), scriptable=False)
    serve(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
