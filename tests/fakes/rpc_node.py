"""A JSON-RPC 2.0 node at its wire protocol, for the crypto RPC proxy (POST crypto/rpc/{network}): any
method answers `"0x1"`, a call whose params hold the string "fail" answers a JSON-RPC error (-32602,
as a node does for bad parameters), a batch (an array) is answered item by item. Any path is the
node's endpoint (real node URLs carry a key in the path), except paths containing `/html/`, where the
node answers an HTML error page with status 200, as a misconfigured gateway does.

Run it as ``python -m tests.fakes.rpc_node --port P``. ``GET /_fake/stats`` gives the methods seen (in
order), ``POST /_fake/reset`` clears them. eth-tester's real EVM (tests/fakes/chain/) is the node of
the Ethereum-shaped tests; this one answers the methods eth-tester has not (traces, Solana, Starknet).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.fakes.common import JSON, FakeState, arg_parser, fake_app, fake_state, serve


class _Calls(FakeState):
    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    def reset(self) -> None:
        self.methods.clear()

    def stats(self) -> JSON:
        return {"methods": self.methods}


def answer(state: _Calls, call: Any) -> JSON:
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
    state.methods.append(call["method"])
    if "fail" in json.dumps(call.get("params", [])):
        return {
            "jsonrpc": "2.0",
            "id": call.get("id"),
            "error": {"code": -32602, "message": "invalid params"},
        }
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": "0x1"}


async def node(request: Request) -> Response:
    state = fake_state(request)
    if "/html/" in request.url.path:
        return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>")
    try:
        body = json.loads(await request.body())
    except ValueError:
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        return Response(json.dumps(error), media_type="application/json")
    out = [answer(state, item) for item in body] if isinstance(body, list) else answer(state, body)
    return Response(json.dumps(out), media_type="application/json")


def create_app() -> Starlette:
    app = fake_app([], _Calls(), scriptable=False)
    app.router.routes.append(Route("/{path:path}", node, methods=["POST"]))  # after the /_fake/ routes
    return app


def main(argv: list[str] | None = None) -> None:
    args = arg_parser(__doc__).parse_args(argv)
    serve(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
