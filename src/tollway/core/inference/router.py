"""Route choice, retries, fallback and per-route circuit breakers (DESIGN §3 step 8, §6).

A model has one or more routes `{provider, upstream model, priority, weight}`. A call tries them in
priority order (equal priorities in a weighted random order), each up to `1 + retries` times with
exponential backoff and full jitter, honouring an upstream's `retry-after` (capped), and all of it
within one per-request deadline. Only failures before the first byte reach the router: a stream
that has started is never replayed.

What a failure leads to is its kind (providers/base.py `classify`, the same for every provider):
a refused request (400/413/422) is the client's error, at once, from any route; refused credentials
(401/403) and other 4xx are the route's misconfiguration, logged as errors, and the next route is
tried; a 429 moves to the next route, or on the last one is retried as the upstream asks, and ends
as a 429 with `retry-after`; anything else is retried, then the next route.

A route whose last `failure_threshold` attempts all failed (retryable failures only) is skipped for
`cooldown_seconds`; then one probe is let through (half-open): success closes it, failure reopens it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tollway.base.config import RouteConfig
from tollway.core.catalog.catalog import CatalogModel
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import Provider, UpstreamError
from tollway.telemetry import metrics, tracing

log = logging.getLogger("tollway.router")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2
    backoff_seconds: float = 0.25
    backoff_max_seconds: float = 4.0
    retry_after_max_seconds: float = 10.0
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    deadline_seconds: float = 600.0

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, base × 2^retry)]."""
        return random.uniform(0, min(self.backoff_max_seconds, self.backoff_seconds * 2**retry))


@dataclass(slots=True)
class Circuit:
    failures: int = 0
    open_until: float | None = None
    probing: bool = False

    def admit(self, now: float) -> bool:
        if self.open_until is None:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True  # half-open: this request is the probe
        return True

    def succeeded(self) -> None:
        self.failures, self.open_until, self.probing = 0, None, False

    def failed(self, now: float, policy: RetryPolicy, provider: str = "") -> None:
        self.failures += 1
        if self.probing or self.failures >= policy.failure_threshold:
            if self.open_until is None or self.probing:  # it opens (or reopens after its probe)
                metrics.UPSTREAM_COOLDOWNS.labels(provider or "unknown").inc()
            self.open_until = now + policy.cooldown_seconds
            self.probing = False

    def released(self) -> None:
        """The probe got an answer that says nothing about health (a 4xx): let the next one probe."""
        self.probing = False


@dataclass(slots=True)
class Served(Generic[T]):
    provider: Provider
    value: T
    attempts: int


@dataclass
class Router:
    providers: dict[str, Provider]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.monotonic
    circuits: dict[tuple[str, str], Circuit] = field(default_factory=dict)

    def routes(self, model: CatalogModel) -> list[tuple[Provider, RouteConfig]]:
        """Lowest priority first; equal priorities shuffled by weight so load spreads."""
        ordered = sorted(
            model.config.routes, key=lambda r: (r.priority, -(random.random() ** (1.0 / r.weight)))
        )
        return [(self.providers[r.provider], r) for r in ordered]

    def circuit(self, route: RouteConfig) -> Circuit:
        return self.circuits.setdefault((route.provider, route.model), Circuit())

    async def first(self, model: CatalogModel, attempt: Callable[[Provider, str], Awaitable[T]]) -> Served[T]:
        """The first answer of any route, or a TollwayError (upstream_failure; 504 for the deadline)."""
        policy = self.policy
        deadline = self.clock() + policy.deadline_seconds
        attempts = 0
        last: UpstreamError | None = None
        routes = self.routes(model)
        for position, (provider, route) in enumerate(routes):
            circuit = self.circuit(route)
            for retry in range(policy.retries + 1):
                if not circuit.admit(self.clock()):
                    break
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise _deadline(model, attempts)
                attempts += 1
                try:
                    value = await _traced(attempt, provider, route.model, attempts, remaining)
                except TimeoutError:
                    circuit.failed(self.clock(), policy, provider.id)
                    raise _deadline(model, attempts) from None
                except UpstreamError as exc:
                    last = exc
                    more = position < len(routes) - 1
                    wait = self._after(exc, provider, circuit, retry, more, deadline, attempts)
                    if wait is None:
                        break
                    await asyncio.sleep(wait)
                    continue
                except BaseException:  # cancelled (client gone, shutdown): no verdict on the route
                    circuit.released()
                    raise
                circuit.succeeded()
                return Served(provider, value, attempts)
        if last is None:
            cooldown = min(
                (c.open_until for r in model.config.routes if (c := self.circuit(r)).open_until is not None),
                default=self.clock(),
            )
            wait = max(1, math.ceil(cooldown - self.clock()))
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR,
                f"Every route of {model.id!r} is cooling down after repeated upstream failures. "
                f"Retry in {wait} s; you were not charged.",
                headers={"retry-after": str(wait), "x-tollway-attempts": "0"},
            )
        raise _failure(last, attempts)

    def _after(
        self,
        exc: UpstreamError,
        provider: Provider,
        circuit: Circuit,
        retry: int,
        more_routes: bool,
        deadline: float,
        attempts: int,
    ) -> float | None:
        """What a failed attempt leads to: the client's answer (raised), the next route (None), or
        the seconds to wait before this route is tried again."""
        policy = self.policy
        extra = {"provider": provider.id, "status": exc.status, "attempt": attempts, "kind": exc.kind}
        if exc.kind in ("auth", "route"):
            # The operator's to fix, not the client's: say so loudly, and let another route serve.
            circuit.released()
            log.error(
                "upstream refused this server's credentials: check the provider's API key"
                if exc.kind == "auth"
                else "upstream route refused the request as misconfigured: check its base_url and model",
                extra=extra,
            )
            return None
        # The error's own words say which failure it was (a timeout, a dropped connection): they
        # name the provider by id and an exception class, never a URL or an upstream's body.
        log.warning("upstream failed", extra={**extra, "error": str(exc)})
        if exc.kind == "rejected" or not exc.retryable:
            circuit.released()  # says nothing about the route's health
            raise _failure(exc, attempts)
        circuit.failed(self.clock(), policy, provider.id)
        if retry == policy.retries or (exc.kind == "rate_limited" and more_routes):
            return None
        wait = policy.backoff(retry)
        if exc.retry_after is not None:
            if exc.retry_after > policy.retry_after_max_seconds:
                return None  # the upstream asks for longer than we wait: next route
            wait = max(wait, exc.retry_after)
        if self.clock() + wait >= deadline:
            return None
        return wait


def timed(attempt: Callable[[Provider, str], Awaitable[T]]) -> Callable[[Provider, str], Awaitable[T]]:
    """An upstream attempt that records its latency and failure in the metrics (telemetry/metrics.py)."""

    async def timed(provider: Provider, upstream_model: str) -> T:
        started = time.perf_counter()
        try:
            value = await attempt(provider, upstream_model)
        except UpstreamError as exc:
            metrics.record_upstream(provider.id, time.perf_counter() - started, exc.status or 0)
            raise
        except TimeoutError:
            metrics.record_upstream(provider.id, time.perf_counter() - started, 504)
            raise
        metrics.record_upstream(provider.id, time.perf_counter() - started)
        return value

    return timed


async def _traced(
    attempt: Callable[[Provider, str], Awaitable[T]],
    provider: Provider,
    upstream_model: str,
    number: int,
    seconds: float,
) -> T:
    """One attempt within `seconds`, as a CLIENT span when tracing is on (telemetry/tracing.py): provider,
    upstream model, attempt number, outcome and upstream status; never the request or the answer.
    A stream's attempt ends at its first chunk: the rest is relayed under the request's own span."""
    attributes: tracing.Attributes = {
        "tollway.provider": provider.id,
        "tollway.upstream.model": upstream_model,
        "tollway.upstream.attempt": number,
    }
    outcome, status = "error", None
    with tracing.span(f"upstream {provider.id}", attributes, kind=tracing.CLIENT) as span:
        try:
            async with asyncio.timeout(seconds):
                value = await attempt(provider, upstream_model)
            outcome = "ok"
            return value
        except UpstreamError as exc:
            outcome, status = ("timeout" if exc.timeout else "error"), exc.status
            raise
        except TimeoutError:
            outcome = "deadline"  # the request's deadline, not the upstream's own timeout
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"  # the client left, or shutdown
            raise
        finally:
            if span.is_recording():
                tracing.set_attributes(
                    {"tollway.upstream.outcome": outcome, "http.response.status_code": status}, span
                )


def _deadline(model: CatalogModel, attempts: int) -> TollwayError:
    return TollwayError(
        ErrorCode.UPSTREAM_TIMEOUT,
        f"No upstream of {model.id!r} answered within the request deadline. Safe to retry; "
        "you were not charged.",
        headers={"x-tollway-attempts": str(attempts)},
    )


def _failure(exc: UpstreamError, attempts: int) -> TollwayError:
    err = upstream_failure(exc)
    err.headers["x-tollway-attempts"] = str(attempts)
    return err


def upstream_failure(exc: UpstreamError) -> TollwayError:
    """What a client is told when no route answered, by the failure's kind (providers/base.py): never
    the upstream's own words, but for a refused request its scrubbed explanation (providers/redact.py)."""
    if exc.timeout:
        return TollwayError(ErrorCode.UPSTREAM_TIMEOUT, f"{exc}. Safe to retry; you were not charged.")
    if exc.kind == "rejected":
        code = ErrorCode.REQUEST_TOO_LARGE if exc.status == 413 else ErrorCode.VALIDATION
        reason = f": {exc.detail}" if exc.detail else "."
        return TollwayError(
            code, f"The upstream provider refused the request{reason} Fix the request; you were not charged."
        )
    if exc.kind == "auth":
        return TollwayError(
            ErrorCode.UPSTREAM_AUTH_FAILED,
            f"{exc}: it refused this server's credentials. Retrying will not help until the operator "
            "fixes the provider's API key; you were not charged.",
        )
    if exc.kind == "rate_limited":
        seconds = max(1, math.ceil(exc.retry_after or 1))
        return TollwayError(
            ErrorCode.UPSTREAM_RATE_LIMITED,
            f"{exc}: the upstream provider is rate limiting this server. Retry in {seconds} s; "
            "you were not charged.",
            headers={"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000)},
        )
    if exc.kind == "route":
        return TollwayError(
            ErrorCode.UPSTREAM_ERROR,
            f"{exc}: the operator's route to this model looks misconfigured; you were not charged.",
        )
    return TollwayError(ErrorCode.UPSTREAM_ERROR, f"{exc}. Safe to retry; you were not charged.")
