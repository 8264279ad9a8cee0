"""The event outbox (store/event_tables.py): written in the transaction that makes an event, read by
publishers (core/events/publisher.py) that claim due rows, deliver them and mark them sent.

Claims are leases: a publisher pushes a due row's `next_attempt_at` forward by its lease and writes its
claim token, in one transaction (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas claim apart
without waiting on each other; SQLite's write lock serialises claims). A publisher that dies leaves
its rows due again once the lease ran out: delivery is at least once, and the event id lets the
consumer (JetStream's `Nats-Msg-Id` window, a webhook receiver) drop a repeat.

Which sinks a database's usage rows go to is registered per process (`enable_usage`), keyed by the
database, because the writer (core/money/usage_events.py, called where the usage row is inserted)
sees only the transaction's connection. Nothing registered (the default): nothing is written.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, tuple_, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.base.ids import new_id
from tollway.store.event_tables import event_outbox as o
from tollway.store.prepared import Prepared

_DbKey = tuple[str, str | None, int | None, str | None]
_USAGE_SINKS: dict[_DbKey, tuple[str, ...]] = {}
_INSERT = Prepared(insert(o))


def _key(url: URL) -> _DbKey:
    return (url.get_backend_name(), url.host, url.port, url.database)


def enable_usage(database_url: str | URL, sinks: Sequence[str]) -> None:
    """This process writes an outbox row per usage row, one per sink, on this database."""
    _USAGE_SINKS[_key(make_url(database_url))] = tuple(sinks)


def disable_usage(database_url: str | URL) -> None:
    _USAGE_SINKS.pop(_key(make_url(database_url)), None)


def usage_sinks(conn: Connection) -> tuple[str, ...]:
    if not _USAGE_SINKS:  # the default: one dict test per settlement
        return ()
    return _USAGE_SINKS.get(_key(conn.engine.url), ())


def add(conn: Connection, event_id: str, sink: str, kind: str, account_id: str, payload: str) -> None:
    """One outbox row, in the caller's transaction: a repeat of (event, sink) is an IntegrityError."""
    now = utcnow()
    _INSERT.first(
        conn,
        {
            "id": event_id,
            "sink": sink,
            "kind": kind,
            "account_id": account_id,
            "payload": payload,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "claim": None,
            "last_error": None,
            "created_at": now,
            "sent_at": None,
        },
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    sink: str
    kind: str
    account_id: str
    payload: str
    attempts: int
    claim: str


async def claim(engine: AsyncEngine, sinks: Sequence[str], limit: int, lease_seconds: float) -> list[Claimed]:
    """Due pending rows of these sinks, oldest first, leased to the caller for `lease_seconds`."""
    now = utcnow()
    token = new_id("clm")
    due = (
        select(o.c.id, o.c.sink)
        .where(o.c.state == "pending", o.c.next_attempt_at <= now, o.c.sink.in_(list(sinks)))
        .order_by(o.c.next_attempt_at, o.c.created_at)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    async with engine.begin() as conn:
        keys = [tuple(row) for row in (await conn.execute(due)).all()]
        if not keys:
            return []
        await conn.execute(
            update(o)
            .where(tuple_(o.c.id, o.c.sink).in_(keys), o.c.state == "pending", o.c.next_attempt_at <= now)
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds), claim=token)
        )
        rows = await conn.execute(
            select(o.c.id, o.c.sink, o.c.kind, o.c.account_id, o.c.payload, o.c.attempts)
            .where(o.c.claim == token)
            .order_by(o.c.created_at)
        )
        return [Claimed(*row, claim=token) for row in rows.all()]


async def sent(engine: AsyncEngine, rows: Sequence[Claimed]) -> None:
    """Mark delivered rows sent, unless their claim was lost meanwhile (another publisher has them)."""
    if not rows:
        return
    by_claim: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_claim.setdefault(row.claim, []).append((row.id, row.sink))
    async with engine.begin() as conn:
        for token, keys in by_claim.items():
            await conn.execute(
                update(o)
                .where(tuple_(o.c.id, o.c.sink).in_(keys), o.c.claim == token)
                .values(
                    state="sent", sent_at=utcnow(), claim=None, attempts=o.c.attempts + 1, last_error=None
                )
            )


def backoff(attempts: int, base: float, most: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped, jittered."""
    return float(min(most, base * 2.0 ** min(attempts, 30)) * random.uniform(0.5, 1.0))


async def retry(
    engine: AsyncEngine, rows: Sequence[Claimed], error: str, delays: Sequence[float], give_up: bool = False
) -> None:
    """Failed attempts: due again after each row's delay, or `failed` for good when giving up."""
    if not rows:
        return
    now = utcnow()
    async with engine.begin() as conn:
        for row, delay in zip(rows, delays, strict=True):
            values: dict[str, Any] = {
                "attempts": o.c.attempts + 1,
                "claim": None,
                "last_error": error[:200],
                "next_attempt_at": now + timedelta(seconds=delay),
            }
            if give_up:
                values["state"] = "failed"
            await conn.execute(
                update(o)
                .where(o.c.id == row.id, o.c.sink == row.sink, o.c.claim == row.claim)
                .values(**values)
            )


async def prune(engine: AsyncEngine, before: datetime, limit: int = 1000) -> int:
    """Delete sent rows older than `before` (their consumers have them), in bounded batches."""
    async with engine.begin() as conn:
        old = select(o.c.id, o.c.sink).where(o.c.state == "sent", o.c.sent_at < before).limit(limit)
        keys = [tuple(row) for row in (await conn.execute(old)).all()]
        if keys:
            await conn.execute(delete(o).where(tuple_(o.c.id, o.c.sink).in_(keys)))
        return len(keys)
