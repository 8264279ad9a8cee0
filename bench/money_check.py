"""The money after a benchmark, read from the stopped server's database (bench/run.py, bench/streams.py,
bench/money_path.py): nothing held, every balance and reservation its ledger's sums, one settlement per
charge. A run whose money is not exact fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from typing import Any

from systems import System, stop

# Each query counts what is wrong; every count must be 0 after a graceful stop.
MONEY_CHECKS = {
    "accounts with money reserved": "select count(*) from accounts where reserved_nano <> 0",
    "open reservations": "select count(*) from reservations",
    "open budget leases": "select count(*) from budget_leases",  # once that table exists
    "accounts whose reserved is not the sum of their ledger's reserved deltas": """
        select count(*) from accounts a left join (
            select account_id, sum(reserved_delta_nano) as total from ledger group by account_id
        ) l on l.account_id = a.id where a.reserved_nano <> coalesce(l.total, 0)""",
    "accounts whose balance is not the sum of their ledger": """
        select count(*) from accounts a left join (
            select account_id, sum(amount_nano) as total from ledger group by account_id
        ) l on l.account_id = a.id where a.balance_nano <> coalesce(l.total, 0)""",
    "charged usage rows without exactly one settle entry of their cost": """
        select count(*) from usage u left join (
            select reference, count(*) as n, sum(amount_nano) as total from ledger
            where kind = 'settle' group by reference
        ) s on s.reference = u.request_id
        where u.cost_nano > 0 and (s.n is null or s.n <> 1 or s.total <> -u.cost_nano)""",
}
FIGURES = {
    "usage rows": "select count(*) from usage",
    "charged usage rows": "select count(*) from usage where cost_nano > 0",
    "settle entries": "select count(*) from ledger where kind = 'settle'",
    "leases taken": "select count(*) from ledger where kind = 'lease'",
}


def money_check(database_url: str) -> dict[str, Any]:
    """The money after the server stopped: nothing held, the balance is its ledger, one settle per charge."""
    queries = {**MONEY_CHECKS, **FIGURES}
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1])) as conn:
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
            counts = {name: conn.execute(q).fetchone()[0] for name, q in queries.items() if _has(tables, q)}
    else:
        import asyncpg

        async def run() -> dict[str, int]:
            conn = await asyncpg.connect(database_url, timeout=10)
            try:
                rows = await conn.fetch("select tablename from pg_tables where schemaname = current_schema()")
                tables = {row[0] for row in rows}
                return {name: await conn.fetchval(q) for name, q in queries.items() if _has(tables, q)}
            finally:
                await conn.close()

        counts = asyncio.run(run())
    problems = {name: counts[name] for name in MONEY_CHECKS if counts.get(name)}
    return {"ok": not problems, "problems": problems, **{name: counts[name] for name in FIGURES}}


def _has(tables: set[str], query: str) -> bool:
    return "budget_leases" in tables or "budget_leases" not in query


def stop_and_check(system: System) -> dict[str, Any]:
    """SIGTERM, then the money check while the database still exists (cleanup drops PostgreSQL's)."""
    cleanup, system.cleanup = system.cleanup, []
    stop(system)
    assert system.proc is not None
    code = system.proc.returncode
    try:
        check = money_check(system.notes["database_url"])
    finally:
        for action in cleanup:
            with contextlib.suppress(Exception):
                action()
    # uvicorn finishes its shutdown, then raises SIGTERM again: -15 is a clean stop, -9 is stop()'s SIGKILL.
    graceful = code in (0, -signal.SIGTERM)
    return {"database": system.notes["database_url"], "exit_code": code, "graceful": graceful, **check}
