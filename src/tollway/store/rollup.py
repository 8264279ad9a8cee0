"""The usage_daily rollup: one row per (account, UTC day, key, label, model), added to in the same
transaction that writes a usage row (core/money/ledger.py). Any new writer of usage rows must call `add`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc
from tollway.store.prepared import Prepared
from tollway.store.tables import usage_daily


def add(conn: Connection, row: dict[str, Any], cost_nano: int) -> None:
    """Count one usage row (metadata only) into its day's group: an upsert, atomic per group."""
    _upsert_for(conn).first(conn, _values(row, cost_nano))


def add_many(conn: Connection, rows: list[tuple[dict[str, Any], int]]) -> None:
    """`add` for each (usage row, cost): summed per group first, then one upsert per group in one
    driver call, groups in key order (two transactions upserting the same groups lock them alike)."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for row, cost_nano in rows:
        values = _values(row, cost_nano)
        key = tuple(values[k] for k in _GROUP)
        total = groups.get(key)
        if total is None:
            groups[key] = values
        else:
            for counter in _COUNTERS:
                total[counter] += values[counter]
    _upsert_for(conn).many(conn, [groups[key] for key in sorted(groups)])


_GROUP = ("account_id", "day", "key_id", "key_label", "model")
_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cost_nano")


def _values(row: dict[str, Any], cost_nano: int) -> dict[str, Any]:
    return {
        "account_id": row["account_id"],
        "day": as_utc(row["created_at"]).date().isoformat(),
        "key_id": row.get("key_id") or "",
        "key_label": row.get("key_label") or "",
        "model": row["model"],
        "requests": 1,
        "prompt_tokens": int(row.get("prompt_tokens") or 0),
        "completion_tokens": int(row.get("completion_tokens") or 0),
        "cost_nano": int(cost_nano),
    }


def _upsert_for(conn: Connection) -> Prepared:
    statement = _UPSERTS.get(conn.dialect.name)
    if statement is None:
        statement = _UPSERTS[conn.dialect.name] = Prepared(_upsert(conn.dialect.name))
    return statement


_UPSERTS: dict[str, Prepared] = {}


def _upsert(dialect: str) -> Insert:
    """Built once per dialect (it runs in every settlement); the values are bound parameters."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(usage_daily)
    c, new = usage_daily.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[c.account_id, c.day, c.key_id, c.key_label, c.model],
        set_={
            "requests": c.requests + new.requests,
            "prompt_tokens": c.prompt_tokens + new.prompt_tokens,
            "completion_tokens": c.completion_tokens + new.completion_tokens,
            "cost_nano": c.cost_nano + new.cost_nano,
        },
    )


async def rebuild(engine: AsyncEngine) -> None:
    """Recompute the whole rollup from usage (tests, or after a manual repair of usage rows)."""
    day = (
        "substr(created_at, 1, 10)"
        if engine.dialect.name == "sqlite"
        else "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')"
    )
    async with engine.begin() as conn:
        await conn.execute(text("delete from usage_daily"))
        await conn.execute(
            text(
                "insert into usage_daily (account_id, day, key_id, key_label, model, requests, "
                "prompt_tokens, completion_tokens, cost_nano) "
                f"select account_id, {day}, coalesce(key_id, ''), coalesce(key_label, ''), model, "
                "count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_nano) from usage "
                f"group by account_id, {day}, coalesce(key_id, ''), coalesce(key_label, ''), model"
            )
        )
