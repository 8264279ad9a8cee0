"""The access log and request metrics, as one pure ASGI middleware (streams pass through untouched).

One JSON line per request on the `tollway.access` logger (level info): request id, method, route
template, status, latency, and — once known — account id, key id and model. Never a path parameter
value, a query string, a header or a body.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway.telemetry import logs, metrics

log = logging.getLogger("tollway.access")
UNMATCHED = "unmatched"


class InFlight:
    """The requests being served now, so a catalog reload can close old providers once they are done."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self.active: set[int] = set()

    def begin(self) -> int:
        token = next(self._ids)
        self.active.add(token)
        return token

    def end(self, token: int) -> None:
        self.active.discard(token)

    async def wait_for(self, tokens: Iterable[int], seconds: float, poll: float = 0.05) -> bool:
        """True once none of `tokens` is in flight; False after `seconds`."""
        waiting = set(tokens)
        deadline = time.monotonic() + seconds
        while waiting & self.active:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True


_SUFFIXES: dict[str, re.Pattern[str]] = {}


def route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix ("/v1/models/{model_id}"), never the path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    regex = getattr(route, "path_regex", None)
    path = str(scope.get("path", ""))
    if isinstance(regex, re.Pattern) and path != template:
        suffix = _SUFFIXES.get(regex.pattern)
        if suffix is None:
            suffix = _SUFFIXES[regex.pattern] = re.compile(regex.pattern.removeprefix("^"))
        match = suffix.search(path)
        if match is not None and match.start() > 0:
            return path[: match.start()] + template  # the static prefix an included router added
    return template


class AccessLog:
    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info: dict[str, Any] = {"request_id": (scope.get("state") or {}).get("request_id")}
        status = 500
        sent = 0

        async def observe(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        token = logs.begin_request(info)
        flight = self.in_flight.begin()
        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, observe)
        finally:
            metrics.IN_FLIGHT.dec()
            self.in_flight.end(flight)
            logs.end_request(token)
            seconds = time.perf_counter() - started
            route = route_template(scope)
            model = str(info.get("model") or "")
            if route != "/metrics":
                metrics.REQUESTS.labels(route, scope["method"], model, str(status)).inc()
                metrics.LATENCY.labels(route, model).observe(seconds)
                if status == 429:
                    metrics.RATE_LIMITED.labels(route).inc()
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "request_id": info.get("request_id"),
                        "account_id": info.get("account_id"),
                        "key_id": info.get("key_id"),
                        "model": model or None,
                        "provider": info.get("provider"),
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "latency_ms": round(seconds * 1000, 1),
                        "bytes": sent,
                    },
                )
