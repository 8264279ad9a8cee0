"""What the operator reads across accounts (issue 24): usage and revenue grouped by account, model and
UTC day, from the daily rollup (store/rollup.py: every replica's calls, kept past usage-row retention);
and each upstream's health.

Upstream health has two sources, and says which is which: the usage rows of the last `window` minutes
(every replica's calls through that upstream: requests, errors, p50/p99 of the whole call's latency),
and this replica's own state — its circuit breakers (an upstream in cooldown is skipped by this replica
until the cooldown ends) and its failed attempts by upstream status since it started (retries included,
which usage rows do not count). Other replicas have their own breakers: ask each, or read /metrics.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.inference.router import Router
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import usage, usage_daily
from tollway.telemetry.metrics import UPSTREAM_ERRORS

GROUPS = ("account", "model", "day")
MAX_DAYS = 366


def utc_day(value: str | None, param: str, default: date) -> date:
    """A report range's end from a query: YYYY-MM-DD, or the default when absent."""
    if value is None:
        return default
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise TollwayError(ErrorCode.VALIDATION, f"`{param}` must be a UTC day, YYYY-MM-DD.", param=param)


MAX_ROWS = 200_000  # latency samples read for one health report


async def usage_across(
    engine: AsyncEngine,
    start: date,
    end: date,
    group_by: Iterable[str],
    account_id: str | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens and revenue (what accounts were charged) per group, `start`..`end` inclusive."""
    d = usage_daily.c
    columns = {"account": d.account_id, "model": d.model, "day": d.day}
    keys = [columns[g] for g in GROUPS if g in set(group_by)]
    statement = (
        select(
            *keys,
            func.sum(d.requests),
            func.sum(d.prompt_tokens),
            func.sum(d.completion_tokens),
            func.sum(d.cost_nano),
        )
        .where(d.day >= start.isoformat(), d.day <= end.isoformat())
        .group_by(*keys)
        .order_by(*keys)
    )
    if account_id is not None:
        statement = statement.where(d.account_id == account_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    names = [g for g in GROUPS if g in set(group_by)]
    out = []
    for row in rows:
        group = {("account_id" if n == "account" else n): row[i] for i, n in enumerate(names)}
        requests, prompt, completion, cost = (int(v or 0) for v in row[len(names) :])
        out.append(
            {
                **group,
                "requests": requests,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "revenue_usd": nano_to_usd(cost),
            }
        )
    return out


def _percentile(ordered: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def _attempt_errors() -> dict[str, dict[str, int]]:
    """This process's failed upstream attempts by provider and status (tollway_upstream_errors)."""
    errors: dict[str, dict[str, int]] = defaultdict(dict)
    for metric in UPSTREAM_ERRORS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                errors[sample.labels["provider"]][sample.labels["status"]] = int(sample.value)
    return errors


async def upstream_health(engine: AsyncEngine, router: Router, window_minutes: int) -> dict[str, Any]:
    since = utcnow() - timedelta(minutes=window_minutes)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(usage.c.provider, usage.c.status_code, usage.c.latency_ms)
                .where(usage.c.created_at >= since, usage.c.provider.is_not(None))
                .limit(MAX_ROWS)
            )
        ).all()
    latencies: dict[str, list[int]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for provider, status, latency in rows:
        latencies[provider].append(int(latency))
        failed[provider] += status >= 500
    now = time.monotonic()
    circuits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (provider, model), circuit in router.circuits.items():
        if circuit.open_until is not None and circuit.open_until > now:
            left = round(circuit.open_until - now, 1)
            circuits[provider].append({"model": model, "seconds_left": left, "failures": circuit.failures})
    attempts = _attempt_errors()
    upstreams = []
    for name in sorted(router.providers):
        ordered = sorted(latencies.get(name, []))
        upstreams.append(
            {
                "provider": name,
                "requests": len(ordered),
                "errors": failed.get(name, 0),
                "p50_ms": _percentile(ordered, 0.5),
                "p99_ms": _percentile(ordered, 0.99),
                "this_replica": {
                    "cooldowns": circuits.get(name, []),
                    "failed_attempts": attempts.get(name, {}),
                },
            }
        )
    return {"object": "upstream_health", "window_minutes": window_minutes, "data": upstreams}
