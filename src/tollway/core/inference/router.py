"""Route choice, retries, fallback and per-route circuit breakers (DESIGN §3 step 8, §6).

A model has one or more routes `{provider, upstream model, priority, weight}`. A call tries them in
priority order (equal priorities in a weighted random order), each up to `1 + retries` times with
exponential backoff and full jitter, honouring an upstream's `retry-after` (capped), and all of it
within one per-request deadline. Only failures before the first byte reach the router: a stream
that has started is never replayed. 4xx answers are never retried.

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
from tollway.telemetry import tracing

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

    def failed(self, now: float, policy: RetryPolicy) -> None:
        self.failures += 1
        if self.probing or self.failures >= policy.failure_threshold:
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
        """The first answer of any route, or a TollwayError (502, or 504 for the deadline)."""
        policy = self.policy
        deadline = self.clock() + policy.deadline_seconds
        attempts = 0
        last: UpstreamError | None = None
        for provider, route in self.routes(model):
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
                    circuit.failed(self.clock(), policy)
                    raise _deadline(model, attempts) from None
                except UpstreamError as exc:
                    last = exc
                    log.warning(
                        "upstream failed",
                        extra={"provider": provider.id, "status": exc.status, "attempt": attempts},
                    )
                    if not exc.retryable:
                        circuit.released()
                        raise _failure(exc, attempts) from None
                    circuit.failed(self.clock(), policy)
                    if retry == policy.retries:
                        break
                    wait = policy.backoff(retry)
                    if exc.retry_after is not None:
                        if exc.retry_after > policy.retry_after_max_seconds:
                            break  # the upstream asks for longer than we wait: next route
                        wait = max(wait, exc.retry_after)
                    if self.clock() + wait >= deadline:
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
    """What a client is told when every route failed: the code, never the upstream's own words."""
    if exc.timeout:
        return TollwayError(ErrorCode.UPSTREAM_TIMEOUT, f"{exc}. Safe to retry; you were not charged.")
    return TollwayError(ErrorCode.UPSTREAM_ERROR, f"{exc}. Safe to retry; you were not charged.")
