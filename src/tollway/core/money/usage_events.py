"""Usage events (issue 26): one event per usage row, written to the outbox (store/outbox.py) in the
same transaction as the row itself (`charges.record_usage`), so an event exists exactly when its
settlement committed. Off unless this process registered sinks for the database (core/events/).

The event is metadata only, never content: account, key id, model, endpoint, token counts, units,
the cost the ledger charged (nano-USD and its USD string), outcome, request id, timestamps. Its id is
`usage_<request id>`: a usage row's request id is unique, so a repeat of the event carries the same id.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

from tollway.base.clock import as_utc
from tollway.core.money.prices import nano_to_usd
from tollway.store import outbox

KIND = "usage"


def event(row: dict[str, Any], cost_nano: int) -> dict[str, Any]:
    """The event of a usage row, with the cost as charged."""
    return {
        "id": f"usage_{row['request_id']}",
        "type": KIND,
        "request_id": row["request_id"],
        "account_id": row["account_id"],
        "key_id": row.get("key_id"),
        "model": row["model"],
        "endpoint": row.get("endpoint"),
        "prompt_tokens": int(row.get("prompt_tokens") or 0),
        "completion_tokens": int(row.get("completion_tokens") or 0),
        "cached_tokens": int(row.get("cached_tokens") or 0),
        "reasoning_tokens": int(row.get("reasoning_tokens") or 0),
        "units": int(row.get("units") or 0),
        "cost_nano": int(cost_nano),
        "cost_usd": nano_to_usd(int(cost_nano)),
        "outcome": row.get("outcome"),
        "status_code": row.get("status_code"),
        "latency_ms": row.get("latency_ms"),
        "occurred_at": as_utc(row["created_at"]).isoformat(),
    }


def capture(conn: Connection, row: dict[str, Any], cost_nano: int) -> None:
    """The outbox rows of one usage row, one per sink, in the caller's transaction (none when off)."""
    sinks = outbox.usage_sinks(conn)
    if not sinks:
        return
    body = event(row, cost_nano)
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True)
    for sink in sinks:
        outbox.add(conn, body["id"], sink, KIND, row["account_id"], payload)
