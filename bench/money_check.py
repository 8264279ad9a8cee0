"""The money after a benchmark, read from the stopped server's database (bench/run.py, bench/streams.py,
bench/money_path.py). A run whose money is not exact fails.

Every ledger entry that moves `reserved` belongs to a per-call hold or to a budget lease
(core/money/ledger.py, core/money/leases.py, core/money/lease_rows.py):
- a per-call hold of request r: 'reserve' +h (reference r), then 'settle' −h, or 'release' −h (its end,
  or the sweeper's, after which a late 'settle' frees 0); so per (account, r) they net to 0 once no
  `reservations` row is left;
- a lease L: 'lease' +A (reference L); 'unlease' −x for what goes back (references L/trim, L/<request>, L/end,
  L/swept); and the 'settle' −f of each call carved from it (reference r, no 'reserve' entry),
  f = what the lease paid of the charge (≤ the charge, and 0 when its row was already gone). So A =
  Σ its returns + consumed, and over all leases Σ 'lease' + Σ 'unlease' + Σ leased 'settle' = 0 once no
  `budget_leases` row is left. Consumed rows are deleted, so per lease only 0 ≤ A − returns ≤ A holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
from typing import Any

from systems import System, stop

# A settlement of a call carved from a lease: no 'reserve' entry for its request.
_LEASED = """kind = 'settle' and not exists (select 1 from ledger r where r.account_id = l.account_id
    and r.reference = l.reference and r.kind = 'reserve')"""


def _lease_of(entry: str) -> str:
    """An 'unlease' entry's lease: its reference less the suffix (lease ids have no '/')."""
    # Lease ids are new_id("lease"): "lease_" and 20 hex digits. The suffix is /trim, /end, /swept or
    # /<request id> (a retired lease gives back a call's unspent hold as the call ends).
    return f"substr({entry}.reference, 1, 26)"


# Each query gives what is wrong (a count, or nano-USD off); every figure must be 0 after a graceful stop.
MONEY_CHECKS = {
    "accounts with money reserved": "select count(*) from accounts where reserved_nano <> 0",
    "open reservations": "select count(*) from reservations",
    "open budget leases": "select count(*) from budget_leases",  # once that table exists
    "accounts whose balance is not the sum of their ledger": """
        select count(*) from accounts a left join (
            select account_id, sum(amount_nano) as total from ledger group by account_id
        ) l on l.account_id = a.id where a.balance_nano <> coalesce(l.total, 0)""",
    "accounts whose reserved is not the sum of their ledger's reserved deltas": """
        select count(*) from accounts a left join (
            select account_id, sum(reserved_delta_nano) as total from ledger group by account_id
        ) l on l.account_id = a.id where a.reserved_nano <> coalesce(l.total, 0)""",
    "nano-USD of reserved deltas left over the whole ledger": """
        select coalesce(sum(reserved_delta_nano), 0) from ledger""",
    "per-call holds whose reserve, settle and release entries do not net to 0": """
        select count(*) from (
            select h.account_id, h.reference from ledger h join ledger e on e.account_id = h.account_id
                and e.reference = h.reference and e.kind in ('reserve', 'settle', 'release')
            where h.kind = 'reserve' group by h.account_id, h.reference having sum(e.reserved_delta_nano) <> 0
        ) as bad""",
    "nano-USD by which leases taken, returned and paid from do not net to 0": f"""
        select coalesce(sum(reserved_delta_nano), 0) from ledger l
        where kind in ('lease', 'unlease') or ({_LEASED})""",
    "leases that returned more than they took": f"""
        select count(*) from ledger l left join (
            select account_id, {_lease_of("r")} as lease, sum(reserved_delta_nano) as total from ledger r
            where kind = 'unlease' group by account_id, {_lease_of("r")}
        ) u on u.account_id = l.account_id and u.lease = l.reference
        where l.kind = 'lease' and (l.reserved_delta_nano < 0 or l.reserved_delta_nano + coalesce(u.total, 0) < 0)""",
    "returns of no lease taken": f"""
        select count(*) from ledger u where kind = 'unlease' and (reserved_delta_nano >= 0 or not exists (
            select 1 from ledger l where l.account_id = u.account_id and l.kind = 'lease'
                and l.reference = {_lease_of("u")}))""",
    "leased settlements that freed more than they charged": f"""
        select count(*) from ledger l where {_LEASED}
        and (reserved_delta_nano > 0 or reserved_delta_nano < amount_nano)""",
    "reserved deltas of no hold and no lease": """
        select count(*) from ledger l where reserved_delta_nano <> 0 and (
            kind not in ('reserve', 'settle', 'release', 'lease', 'unlease')
            or (kind = 'release' and not exists (select 1 from ledger r where r.account_id = l.account_id
                and r.reference = l.reference and r.kind = 'reserve')))""",
    # One settlement per charge: the ledger's unique (account, kind, reference) allows one per account,
    # and usage.request_id is unique; these catch a charge settled in no account, or in another one.
    "charged usage rows without exactly one settle entry of their cost": """
        select count(*) from usage u left join (
            select account_id, reference, count(*) as n, sum(amount_nano) as total from ledger
            where kind = 'settle' group by account_id, reference
        ) s on s.reference = u.request_id and s.account_id = u.account_id
        where u.cost_nano > 0 and (s.n is null or s.n <> 1 or s.total <> -u.cost_nano)""",
    "settle entries without a usage row of their charge": """
        select count(*) from ledger l left join usage u on u.request_id = l.reference
            and u.account_id = l.account_id
        where l.kind = 'settle' and (u.request_id is null or u.cost_nano <> -l.amount_nano)""",
    "nano-USD by which usage costs are not the settled charges": """
        select (select coalesce(sum(cost_nano), 0) from usage)
             + (select coalesce(sum(amount_nano), 0) from ledger where kind = 'settle')""",
}
FIGURES = {
    "usage rows": "select count(*) from usage",
    "charged usage rows": "select count(*) from usage where cost_nano > 0",
    "settle entries": "select count(*) from ledger where kind = 'settle'",
    "per-call holds": "select count(*) from ledger where kind = 'reserve'",
    "leases taken": "select count(*) from ledger where kind = 'lease'",
    "charged nano": "select coalesce(sum(cost_nano), 0) from usage",
    "leased nano": "select coalesce(sum(reserved_delta_nano), 0) from ledger where kind = 'lease'",
    "returned nano": "select coalesce(-sum(reserved_delta_nano), 0) from ledger where kind = 'unlease'",
    "paid from leases nano": f"select coalesce(-sum(reserved_delta_nano), 0) from ledger l where {_LEASED}",
}


def plain_url(database_url: str) -> str:
    """sqlite:///… or postgresql://… without SQLAlchemy's driver (`+aiosqlite`, `+asyncpg`)."""
    return re.sub(r"^(sqlite|postgresql)\+\w+://", r"\1://", database_url)


async def money_check_async(database_url: str) -> dict[str, Any]:
    """The money in a database no server is using: `ok`, the `problems` (check → how far off), and the
    FIGURES. A check reads every account: the database must be the run's own."""
    url = plain_url(database_url)
    queries = {**MONEY_CHECKS, **FIGURES}
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.split("///", 1)[1])) as conn:
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
            counts = {name: conn.execute(q).fetchone()[0] for name, q in queries.items() if _has(tables, q)}
    else:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=10)
        try:
            rows = await conn.fetch("select tablename from pg_tables where schemaname = current_schema()")
            tables = {row[0] for row in rows}
            counts = {name: await conn.fetchval(q) for name, q in queries.items() if _has(tables, q)}
        finally:
            await conn.close()
    counts = {name: int(value) for name, value in counts.items()}  # PostgreSQL's sums are numeric
    problems = {name: counts[name] for name in MONEY_CHECKS if counts.get(name)}
    return {"ok": not problems, "problems": problems, **{name: counts.get(name) for name in FIGURES}}


def money_check(database_url: str) -> dict[str, Any]:
    return asyncio.run(money_check_async(database_url))


def _has(tables: set[str], query: str) -> bool:
    return "budget_leases" in tables or "budget_leases" not in query


def failures(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The checks of a run (system → stop_and_check's answer) that fail it."""
    return {name: check for name, check in checks.items() if not (check["ok"] and check["graceful"])}


def stop_and_check(system: System) -> dict[str, Any]:
    """SIGTERM, then the money check while the database still exists (cleanup drops PostgreSQL's)."""
    cleanup, system.cleanup = system.cleanup, []
    stop(system)
    assert system.proc is not None
    code = system.proc.returncode
    try:
        check = money_check(system.notes["database_url"])
    except Exception as exc:  # a check that cannot read the money fails the run, it does not end it
        check = {"ok": False, "problems": {"the check could not run": f"{type(exc).__name__}: {exc}"}}
    finally:
        for action in cleanup:
            with contextlib.suppress(Exception):
                action()
    # uvicorn finishes its shutdown, then raises SIGTERM again: -15 is a clean stop, -9 is stop()'s SIGKILL.
    graceful = code in (0, -signal.SIGTERM)
    return {"database": system.notes["database_url"], "exit_code": code, "graceful": graceful, **check}
