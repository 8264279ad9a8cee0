"""The outbox's publisher: every replica runs one (runtime/app.py); they share the work by claims
(store/outbox.py), so an event is delivered at least once whichever replicas live, and usually once.

Each tick: find low-balance crossings (alerts.py), claim a batch of due rows of the sinks this process
has, deliver each to its sink, mark it sent. The first failure of a sink in a tick puts that row and
the sink's other claimed rows back with a doubling, jittered backoff (a broker that is down is not
hammered, and its rows wait in the outbox); a sink with `max_attempts` (alerts) gives a row up after
that many. An idle tick sleeps `poll_seconds`; a full batch goes again at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.events.alerts import Alerts
from tollway.core.events.webhooks import DeliveryError, Poster, Undeliverable
from tollway.store import outbox
from tollway.store.outbox import Claimed
from tollway.telemetry import metrics

log = logging.getLogger("tollway.events")


class Sink(Protocol):
    name: str
    max_attempts: int | None  # None: retried for ever (usage events)
    concurrency: int  # deliveries in flight at once

    async def deliver(self, row: Claimed) -> None: ...

    async def aclose(self) -> None: ...


class WebhookSink:
    """Usage events to the operator's webhook (TOLLWAY_EVENTS_WEBHOOK_URL), signed with its secret."""

    name = "webhook"
    max_attempts: int | None = None
    concurrency = 4

    def __init__(self, poster: Poster, url: str, secret: bytes) -> None:
        self.poster, self.url, self._secret = poster, url, secret

    async def deliver(self, row: Claimed) -> None:
        await self.poster.post(self.url, row.payload.encode(), row.id, self._secret)

    async def aclose(self) -> None:
        return None


def _count(rows: list[Claimed], outcome: str) -> None:
    for row in rows:
        metrics.EVENTS.labels(row.sink, outcome).inc()


class Publisher:
    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Mapping[str, Sink],
        *,
        poster: Poster,
        alerts: Alerts | None = None,
        poll_seconds: float = 1.0,
        batch_size: int = 200,
        lease_seconds: float = 30.0,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
        retention_hours: int = 72,
    ) -> None:
        self.engine = engine
        self.sinks = dict(sinks)
        self.poster = poster  # the webhooks' HTTP client, closed by the services
        self.alerts = alerts
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.retention = timedelta(hours=retention_hours)
        self._pruned_at = utcnow()

    async def run_forever(self) -> None:
        while True:
            try:
                busy = await self.tick() >= self.batch_size
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away a moment: the next tick tries again
                log.exception("event publisher tick failed")
                busy = False
            if not busy:
                await asyncio.sleep(self.poll_seconds)

    async def tick(self) -> int:
        """One round: crossings, then a batch of due rows. Returns the rows claimed."""
        if self.alerts is not None:
            await self.alerts.check()
        if not self.sinks:
            return 0
        rows = await outbox.claim(self.engine, list(self.sinks), self.batch_size, self.lease_seconds)
        by_sink: dict[str, list[Claimed]] = {}
        for row in rows:
            by_sink.setdefault(row.sink, []).append(row)
        await asyncio.gather(*(self._deliver(self.sinks[name], mine) for name, mine in by_sink.items()))
        await self._prune()
        return len(rows)

    async def _deliver(self, sink: Sink, rows: list[Claimed]) -> None:
        """A sink's rows in order, `concurrency` at a time; after a failed chunk, the rest wait."""
        done: list[Claimed] = []
        gone: list[Claimed] = []
        failed: list[Claimed] = []
        error = ""
        step = max(1, sink.concurrency)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            if failed:
                failed.extend(chunk)
                continue
            outcomes = await asyncio.gather(*(sink.deliver(row) for row in chunk), return_exceptions=True)
            for row, outcome in zip(chunk, outcomes, strict=True):
                if outcome is None:
                    done.append(row)
                elif isinstance(outcome, Undeliverable):
                    log.warning("event %s given up: %s", row.id, outcome)
                    gone.append(row)
                elif isinstance(outcome, DeliveryError):
                    error = str(outcome)
                    failed.append(row)
                else:
                    raise outcome
        if failed:
            log.warning("event delivery to %s failed, will retry: %s", sink.name, error)
        await outbox.sent(self.engine, done)
        await outbox.retry(self.engine, gone, "undeliverable", [0.0] * len(gone), give_up=True)
        await self._retry(sink, failed, error)
        _count(done, "sent")
        _count(gone, "failed")

    async def _retry(self, sink: Sink, rows: list[Claimed], error: str) -> None:
        if not rows:
            return
        most = sink.max_attempts
        last = [r for r in rows if most is not None and r.attempts + 1 >= most]
        again = [r for r in rows if r not in last]
        delays = [outbox.backoff(r.attempts, self.retry_base_seconds, self.retry_max_seconds) for r in again]
        await outbox.retry(self.engine, again, error, delays)
        await outbox.retry(self.engine, last, error, [0.0] * len(last), give_up=True)
        _count(again, "retried")
        _count(last, "failed")

    async def _prune(self) -> None:
        now = utcnow()
        if now - self._pruned_at >= timedelta(minutes=10):
            self._pruned_at = now
            await outbox.prune(self.engine, now - self.retention)

    async def aclose(self) -> None:
        for sink in self.sinks.values():
            await sink.aclose()
