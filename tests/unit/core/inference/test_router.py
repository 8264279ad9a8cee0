"""The router without HTTP: retries and backoff, retry-after, fallback, the deadline, circuit breakers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tollway.base.config import ModelConfig
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.inference.router import RetryPolicy, Router
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import UpstreamError, classify


class Scripted:
    def __init__(self, provider_id: str, *outcomes: Any) -> None:
        self.id = provider_id
        self.outcomes = list(outcomes)
        self.calls = 0

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)
            return {"slow": True}
        if isinstance(outcome, UpstreamError):
            raise outcome
        return {"ok": self.id}

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def model(*routes: tuple[str, int]) -> CatalogModel:
    config = ModelConfig.model_validate(
        {
            "id": "m",
            "routes": [{"provider": p, "model": "up", "priority": prio} for p, prio in routes],
            "pricing": {"input": "1"},
        }
    )
    from decimal import Decimal

    return CatalogModel(config, Decimal(1))


FAST = RetryPolicy(
    retries=2,
    backoff_seconds=0.001,
    backoff_max_seconds=0.01,
    failure_threshold=3,
    cooldown_seconds=0.2,
    deadline_seconds=1.0,
    retry_after_max_seconds=0.5,
)


def run(router: Router, m: CatalogModel) -> Any:
    return asyncio.run(router.first(m, lambda p, upstream: p.chat({"model": upstream})))


def test_retries_then_falls_back_and_counts_attempts() -> None:
    a = Scripted(
        "a", UpstreamError("x", status=500), UpstreamError("x", status=502), UpstreamError("x", status=503)
    )
    b = Scripted("b")
    served = run(Router({"a": a, "b": b}, FAST), model(("a", 0), ("b", 1)))
    assert served.provider is b and served.attempts == 4 and (a.calls, b.calls) == (3, 1)


def test_4xx_stops_at_once() -> None:
    a, b = Scripted("a", UpstreamError("x", status=400, retryable=False)), Scripted("b")
    with pytest.raises(TollwayError) as caught:
        run(Router({"a": a, "b": b}, FAST), model(("a", 0), ("b", 1)))
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR and (a.calls, b.calls) == (1, 0)
    assert caught.value.headers["x-tollway-attempts"] == "1"


def test_retry_after_above_the_cap_falls_back_without_waiting() -> None:
    a, b = Scripted("a", UpstreamError("x", status=429, retry_after=60)), Scripted("b")
    served = run(Router({"a": a, "b": b}, FAST), model(("a", 0), ("b", 1)))
    assert served.provider is b and a.calls == 1


def test_deadline_is_504() -> None:
    a = Scripted("a", 5.0)
    with pytest.raises(TollwayError) as caught:
        run(Router({"a": a}, FAST), model(("a", 0)))
    assert caught.value.code is ErrorCode.UPSTREAM_TIMEOUT


def test_circuit_opens_then_half_opens_with_one_probe() -> None:
    now = [0.0]
    a = Scripted("a", *[UpstreamError("x", status=500)] * 4)
    router = Router({"a": a}, FAST, clock=lambda: now[0])
    m = model(("a", 0))
    with pytest.raises(TollwayError):
        run(router, m)
    assert a.calls == 3
    with pytest.raises(TollwayError) as caught:
        run(router, m)
    assert a.calls == 3 and "cooling down" in caught.value.message  # open: not even tried
    now[0] = 1.0  # past the cooldown: one probe, which fails and reopens the circuit
    with pytest.raises(TollwayError):
        run(router, m)
    assert a.calls == 4
    now[0] = 2.0
    assert run(router, m).provider is a and a.calls == 5  # the probe succeeds: closed again
    assert router.circuit(m.config.routes[0]).failures == 0


def failure(status: int, retry_after: float | None = None) -> UpstreamError:
    """An HTTP status failure as every provider makes it (providers/base.py classify)."""
    kind = classify(status)
    return UpstreamError(
        f"provider answered HTTP {status}",
        status=status,
        retryable=kind in ("transient", "rate_limited"),
        retry_after=retry_after,
        kind=kind,
        detail="bad `temperature`" if kind == "rejected" else None,
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, ErrorCode.VALIDATION), (422, ErrorCode.VALIDATION), (413, ErrorCode.REQUEST_TOO_LARGE)],
)
def test_a_refused_request_is_the_clients_error_from_the_first_route(status: int, code: ErrorCode) -> None:
    a, b = Scripted("a", failure(status)), Scripted("b")
    with pytest.raises(TollwayError) as caught:
        run(Router({"a": a, "b": b}, FAST), model(("a", 0), ("b", 1)))
    assert caught.value.code is code and (a.calls, b.calls) == (1, 0)
    assert "bad `temperature`" in caught.value.message


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_misconfigured_route_is_not_retried_but_the_next_route_serves(status: int) -> None:
    a, b = Scripted("a", failure(status)), Scripted("b")
    router = Router({"a": a, "b": b}, FAST)
    m = model(("a", 0), ("b", 1))
    served = run(router, m)
    assert served.provider is b and served.attempts == 2 and a.calls == 1
    assert router.circuit(m.config.routes[0]).failures == 0  # no verdict on the route's health


def test_refused_credentials_on_the_only_route_are_upstream_auth_failed() -> None:
    a = Scripted("a", failure(401))
    with pytest.raises(TollwayError) as caught:
        run(Router({"a": a}, FAST), model(("a", 0)))
    assert caught.value.code is ErrorCode.UPSTREAM_AUTH_FAILED and caught.value.status == 502
    assert "Safe to retry" not in caught.value.message and a.calls == 1


def test_a_429_moves_to_the_next_route_without_waiting() -> None:
    a, b = Scripted("a", failure(429, retry_after=0.4)), Scripted("b")
    served = run(Router({"a": a, "b": b}, FAST), model(("a", 0), ("b", 1)))
    assert served.provider is b and a.calls == 1


def test_a_429_on_the_last_route_is_retried_then_passed_on_with_retry_after() -> None:
    a = Scripted("a", *[failure(429, retry_after=0.01)] * 3)
    with pytest.raises(TollwayError) as caught:
        run(Router({"a": a}, FAST), model(("a", 0)))
    assert caught.value.code is ErrorCode.UPSTREAM_RATE_LIMITED and caught.value.status == 429
    assert a.calls == 3 and caught.value.headers["retry-after"] == "1"
    b = Scripted("b", failure(429, retry_after=42))  # longer than the router waits: passed on at once
    with pytest.raises(TollwayError) as long:
        run(Router({"b": b}, FAST), model(("b", 0)))
    assert b.calls == 1 and long.value.headers["retry-after"] == "42"
