"""Database lifecycle: migrations down to base and back (SQLite and PostgreSQL), usage retention, the
usage_daily rollup, and NightVeil /usage latency on 1M synthetic rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.contract.servers import postgres_database
from tollway.core.money.usage_reports import UsageReports
from tollway.runtime.maintenance import delete_old_usage
from tollway.settings import Settings
from tollway.store import migrate, rollup
from tollway.store.db import create_engine

TABLES = {"accounts", "api_keys", "ledger", "reservations", "usage", "usage_daily", "key_events"}


def _tables(async_url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(async_url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _round_trip(async_url: str) -> None:
    migrate.upgrade(async_url)
    assert _tables(async_url) >= TABLES
    migrate.downgrade(async_url, "base")
    assert _tables(async_url) <= {"alembic_version"}
    migrate.upgrade(async_url)
    assert _tables(async_url) >= TABLES
    migrate.downgrade(async_url, "0002")  # just the rollup
    assert "usage_daily" not in _tables(async_url) and "usage" in _tables(async_url)
    migrate.upgrade(async_url)


def test_migrations_down_to_base_and_up_on_sqlite(tmp_path: Path) -> None:
    _round_trip(Settings(database_url=f"sqlite:///{tmp_path}/m.db").async_database_url)


@pytest.mark.slow
def test_migrations_down_to_base_and_up_on_postgresql() -> None:
    _round_trip(Settings(database_url=postgres_database()).async_database_url)


async def _seed(async_url: str, rows: int, days: int) -> None:
    """`rows` usage rows for one account spread over `days` days, plus noise for a second account."""
    engine = create_engine(async_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "insert into usage (request_id, account_id, key_id, key_label, model, endpoint, provider, "
                    "prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, units, cost_nano, "
                    "usage_source, outcome, status_code, latency_ms, created_at) "
                    "select 'r' || g, case when g % 10 = 0 then 'acct_other' else 'acct_big' end, "
                    "'key_' || (g % 4), 'label-' || (g % 4), case when g % 3 = 0 then 'm-a' else 'm-b' end, "
                    "'chat', 'fake', 10 + g % 7, 20 + g % 5, 0, 0, 0, 1000 + g % 13, 'provider', 'completed', "
                    "200, 5, now() - make_interval(secs => (g::float8 / :rows) * :days * 86400) "
                    "from generate_series(1, :rows) g"
                ),
                {"rows": rows, "days": days},
            )
        await rollup.rebuild(engine)
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_usage_report_on_a_million_rows_in_postgresql_reads_the_rollup() -> None:
    async_url = Settings(database_url=postgres_database()).async_database_url
    migrate.upgrade(async_url)

    async def run() -> tuple[float, float, dict[str, object], dict[str, object]]:
        started = time.perf_counter()
        await _seed(async_url, 1_000_000, 60)
        seeded = time.perf_counter() - started
        engine = create_engine(async_url)
        try:
            reports = UsageReports(engine)
            started = time.perf_counter()
            report = await reports.grouped("acct_big", None, None)  # the last 30 days
            took = time.perf_counter() - started
            # Exactly what the raw rows say, for a range of whole days.
            end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = end - timedelta(days=10)
            ranged = await reports.grouped("acct_big", start, end - timedelta(microseconds=1))
            async with engine.connect() as conn:
                raw = (
                    await conn.execute(
                        text(
                            "select count(*), sum(cost_nano) from usage where account_id = 'acct_big' "
                            "and created_at >= :s and created_at < :e"
                        ),
                        {"s": start, "e": end},
                    )
                ).one()
            assert sum(int(str(r["requests"])) for r in ranged["data"]) == raw[0]  # type: ignore[union-attr]
            assert ranged["total_cost_usd"] == f"{raw[1] / 10**9:.9f}"
            return seeded, took, report, ranged
        finally:
            await engine.dispose()

    seeded, took, report, _ = asyncio.run(run())
    print(
        f"\n1M usage rows seeded + rolled up in {seeded:.1f} s; /usage over 30 days took {took * 1000:.0f} ms"
    )
    assert report["data"]
    assert took < 2.0, f"/usage took {took:.2f} s on 1M rows"


def test_retention_deletes_old_rows_in_batches_and_the_rollup_keeps_totals(tmp_path: Path) -> None:
    async_url = Settings(database_url=f"sqlite:///{tmp_path}/r.db").async_database_url
    migrate.upgrade(async_url)

    async def run() -> None:
        engine = create_engine(async_url)
        try:
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                for i in range(25):
                    await conn.execute(
                        text(
                            "insert into usage (request_id, account_id, key_id, key_label, model, endpoint, "
                            "prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, units, cost_nano, "
                            "usage_source, outcome, status_code, latency_ms, created_at) values (:r, 'acct_1', "
                            "'key_1', 'l', 'm', 'chat', 1, 2, 0, 0, 0, 100, 'provider', 'completed', 200, 1, :t)"
                        ),
                        {"r": f"r{uuid.uuid4().hex}", "t": now - timedelta(days=40 if i < 20 else 1)},
                    )
            await rollup.rebuild(engine)
            assert await delete_old_usage(engine, 30, batch=7) == 20
            async with engine.connect() as conn:
                left = (await conn.execute(text("select count(*) from usage"))).scalar_one()
                rolled = (await conn.execute(text("select sum(requests) from usage_daily"))).scalar_one()
            assert left == 5 and rolled == 25
            report = await UsageReports(engine).grouped("acct_1", now - timedelta(days=60), now)
            assert sum(int(r["requests"]) for r in report["data"]) == 25  # type: ignore[union-attr]
        finally:
            await engine.dispose()

    asyncio.run(run())
