"""Prometheus metrics (`GET /metrics`, which needs the operator key, or a listener of their own).

Labels are bounded and never secret: a route *template* (not the path), a public model id, a provider
id, an HTTP status, a token kind. Never a key, a key id, an account id, a prompt or an answer.

Several worker processes on one port (gunicorn/uvicorn --workers) must set `PROMETHEUS_MULTIPROC_DIR`
to an empty directory: values then live in shared files and `/metrics` aggregates every process.
Separate replicas are scraped separately, as usual.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

REQUESTS = Counter(
    "tollway_http_requests",
    "HTTP requests by route template, method, model and status.",
    ["route", "method", "model", "status"],
)
LATENCY = Histogram(
    "tollway_http_request_duration_seconds",
    "Request duration (for streams: until the last byte) by route template and model.",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "tollway_http_requests_in_flight", "Requests being served now.", multiprocess_mode="livesum"
)
RATE_LIMITED = Counter(
    "tollway_rate_limited", "Requests refused by a rate limiter (429) by route template.", ["route"]
)
UPSTREAM_LATENCY = Histogram(
    "tollway_upstream_duration_seconds",
    "Upstream attempt duration (a whole buffered answer, or a stream's first chunk) by provider.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "tollway_upstream_errors",
    "Failed upstream attempts by provider and upstream status.",
    ["provider", "status"],
)
TOKENS = Counter("tollway_tokens", "Metered tokens by model and kind.", ["model", "kind"])
SPEND = Counter("tollway_spend_nano_usd", "Charged amounts in nano-USD (1e-9 USD) by model.", ["model"])
RESERVATIONS = Gauge(
    "tollway_reservations_outstanding",
    "Open balance reservations in the database (all replicas), refreshed by the sweeper.",
    multiprocess_mode="max",
)
RESERVED = Gauge(
    "tollway_reserved_nano_usd",
    "Nano-USD held by open reservations (all replicas), refreshed by the sweeper.",
    multiprocess_mode="max",
)
JOBS = Gauge(
    "tollway_jobs",
    "Async media jobs not yet finished, by status (queued, processing, unknown; all replicas), "
    "refreshed by the sweeper.",
    ["status"],
    multiprocess_mode="max",
)
JOBS_OLDEST = Gauge(
    "tollway_jobs_oldest_age_seconds",
    "Age of the oldest async job not yet finished, by status (0: none; all replicas), refreshed by the sweeper.",
    ["status"],
    multiprocess_mode="max",
)
UPSTREAM_COOLDOWNS = Counter(
    "tollway_upstream_cooldowns",
    "Times a route's circuit breaker opened (the route is skipped for its cooldown), by provider.",
    ["provider"],
)
LEDGER_VIOLATIONS = Gauge(
    "tollway_ledger_invariant_violations",
    "Accounts whose balance or reserved disagrees with their ledger or their live holds, at the latest "
    "ledger invariant check (core/money/invariants.py; all replicas share one check).",
    multiprocess_mode="max",
)
LEDGER_CHECKED = Gauge(
    "tollway_ledger_invariant_last_check_timestamp_seconds",
    "When the latest ledger invariant check ran (Unix time; 0: never).",
    multiprocess_mode="max",
)
SWEPT = Counter("tollway_reservations_swept", "Expired reservations released by the sweeper.")
RELOADS = Counter("tollway_catalog_reloads", "Catalog reloads by outcome.", ["outcome"])
DEPOSIT_LAG = Gauge(
    "tollway_deposit_watcher_lag_blocks",
    "Confirmed blocks the USDC deposit watcher has not scanned yet (core/funding/deposits.py; 0: caught up).",
    multiprocess_mode="max",
)
DEPOSITS = Counter(
    "tollway_deposits",
    "USDC deposit transfers by outcome: credited, dust (below the minimum), refused (past the balance "
    "ceiling), unknown (not a deposit address), error (a failed watcher pass).",
    ["outcome"],
)
EVENTS = Counter(
    "tollway_events",
    "Outbox events (usage events, low-balance alerts) by sink and outcome: sent, retried, failed (given up).",
    ["sink", "outcome"],
)


def record_upstream(provider: str, seconds: float, error_status: int | None = None) -> None:
    UPSTREAM_LATENCY.labels(provider).observe(seconds)
    if error_status is not None:
        UPSTREAM_ERRORS.labels(provider, str(error_status)).inc()


def record_usage(row: dict[str, Any] | None, charged_nano: int) -> None:
    """After a settle or release: tokens and spend of one call (labels: the model id only)."""
    if row is None:
        return
    model = str(row.get("model") or "unknown")
    for kind in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
        count = int(row.get(kind) or 0)
        if count:
            TOKENS.labels(model, kind.removesuffix("_tokens")).inc(count)
    if charged_nano > 0:
        SPEND.labels(model).inc(charged_nano)


def _registry() -> CollectorRegistry:
    """This process's registry, or one that reads every process's files when multi-process."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text: this process's registry, or every process's when multi-process."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve_apart(host: str, port: int) -> Callable[[], None]:
    """Serve the metrics, with no key, on their own listener (an address only the scraper reaches).

    prometheus_client's server, on a daemon thread: it reads the registry as `render` does. Returns
    the function that stops it. Several worker processes sharing PROMETHEUS_MULTIPROC_DIR: the
    first to bind serves everyone's metrics, the others go on without a listener."""
    try:
        server, thread = start_http_server(port, host, registry=_registry())
    except OSError as exc:
        if os.environ.get(MULTIPROC_ENV) and exc.errno == errno.EADDRINUSE:
            return lambda: None
        raise

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def process_exit() -> None:
    """Multi-process mode: drop this process's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        mark_dead(os.getpid(), os.environ[MULTIPROC_ENV])


def mark_dead(pid: int, directory: str) -> None:
    """Drop the live gauges of process `pid` (`serve --workers`: the supervisor, for a worker that exited)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
