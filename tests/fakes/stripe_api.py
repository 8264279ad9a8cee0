"""A fake of the Stripe API, the outside world of card top-ups (core/funding/stripe_topups.py), spoken at
the wire protocol the official `stripe` library uses: form-encoded bodies with bracket keys, a Bearer
secret key, an Idempotency-Key, JSON objects back.

Run it as ``python -m tests.fakes.stripe_api --port P``. Routes:
- ``POST /v1/checkout/sessions``: a session (``cs_test_…``) with its line item's amount as amount_total,
  a PaymentIntent id (``pi_test_…``, as Stripe gives at payment) and a hosted URL; the same
  Idempotency-Key answers the same session. A wrong key is Stripe's 401 ``authentication_error``.
- ``GET /v1/checkout/sessions/{id}``.
- ``POST /_fake/script {"behaviors": [{"type": "status", "status": 500}]}``: the next create fails so.
- ``GET /_fake/stats``: every session created, by id (tests build the events Stripe would send from it),
  and the last request's headers seen (``authorization`` shows only whether it matched).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import JSON, FakeState, arg_parser, fake_app, fake_state, serve

SECRET_KEY = "sk_test_fake_tollway"


class _Stripe(FakeState):
    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, JSON] = {}
        self.by_idempotency: dict[str, str] = {}
        self.creates = 0

    def reset(self) -> None:
        super().reset()
        self.sessions.clear()
        self.by_idempotency.clear()
        self.creates = 0

    def stats(self) -> JSON:
        return {"sessions": self.sessions, "creates": self.creates}


def _error(status: int, kind: str, message: str) -> Response:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _form(body: str) -> dict[str, str]:
    return dict(parse_qsl(body, keep_blank_values=True))


def _metadata(form: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) : -1]: v for k, v in form.items() if k.startswith(prefix) and k.endswith("]")}


async def create_session(request: Request) -> Response:
    state: _Stripe = fake_state(request)
    if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
        # Stripe quotes part of the key it was given: Tollway must never pass this on.
        given = request.headers.get("authorization", "")[-4:]
        return _error(401, "authentication_error", f"Invalid API Key provided: sk_****{given}")
    behavior = state.next_behavior({"type": "normal"})
    if behavior.get("type") == "status":
        return _error(int(behavior["status"]), "api_error", "scripted failure")
    idem = request.headers.get("idempotency-key")
    if idem and idem in state.by_idempotency:
        return JSONResponse(state.sessions[state.by_idempotency[idem]])
    form = _form((await request.body()).decode())
    try:
        cents = int(form["line_items[0][price_data][unit_amount]"]) * int(
            form.get("line_items[0][quantity]", "1")
        )
        session: dict[str, Any] = {
            "id": f"cs_test_{secrets.token_hex(24)}",
            "object": "checkout.session",
            "mode": form["mode"],
            "amount_total": cents,
            "currency": form["line_items[0][price_data][currency]"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": _metadata(form, "metadata["),
            "payment_intent_metadata": _metadata(form, "payment_intent_data[metadata]["),
            "payment_intent": None,
            "fake_payment_intent": f"pi_test_{secrets.token_hex(12)}",  # what payment will create
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form["success_url"],
            "cancel_url": form.get("cancel_url"),
        }
    except (KeyError, ValueError) as exc:
        return _error(400, "invalid_request_error", f"Missing or bad parameter: {exc}")
    session["url"] = f"https://checkout.stripe.test/c/pay/{session['id']}"
    state.creates += 1
    state.sessions[session["id"]] = session
    if idem:
        state.by_idempotency[idem] = session["id"]
    return JSONResponse(session)


async def get_session(request: Request) -> Response:
    state: _Stripe = fake_state(request)
    session = state.sessions.get(request.path_params["id"])
    if session is None:
        return _error(404, "invalid_request_error", "No such checkout.session")
    return JSONResponse(session)


def create_app() -> Starlette:
    return fake_app(
        [
            Route("/v1/checkout/sessions", create_session, methods=["POST"]),
            Route("/v1/checkout/sessions/{id}", get_session, methods=["GET"]),
        ],
        _Stripe(),
    )


def main(argv: list[str] | None = None) -> None:
    args = arg_parser(__doc__).parse_args(argv)
    serve(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
