"""The money path alone: reserve + settle per call, on SQLite and PostgreSQL.

    .venv/bin/python bench/money_path.py [--calls 2000] [--concurrency 1 16] [--postgres URL]
        [--leases [off|on|both]]

Measures what admission and settlement add to every inference call (DESIGN §3 steps 7 and 10):
one conditional UPDATE + ledger insert + reservation insert, then the settlement transaction with
its usage row; with budget leases (core/money/leases.py, `--leases`) the hold is carved in memory
and only the settlement is a transaction. `--leases both` measures each point both ways, printed side
by side. Prints calls/s and p50/p99 latency per database and concurrency; no upstream involved.

Each measurement runs on a database of its own (a SQLite file; a fresh database on `--postgres`'s
server, dropped after), read after the ledger closed (its leases gone back) by bench/money_check.py:
nothing held, the balance its ledger, one settlement per call. Exits 1 when the money is not exact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from money_check import money_check_async, plain_url
from systems import fresh_pg_database

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade_async

CREDIT, HOLD, COST = 10**15, 213_000, 20_000


async def measure(url: str, calls: int, concurrency: int, leases: bool = False) -> dict[str, Any]:
    """`calls` calls on a fresh database at `url`; their figures and the money check of the database."""
    await upgrade_async(url)
    engine = create_engine(url)
    ledger = Ledger(engine, budget_leases=leases)
    account = await Accounts(engine, ledger).create("bench", credit_nano=CREDIT)
    latencies: list[float] = []
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            request_id = f"req_{uuid.uuid4().hex}"
            started = time.perf_counter()
            await ledger.reserve(account.id, request_id, HOLD)
            await ledger.settle(account.id, request_id, COST, usage_row(request_id, account.id))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await ledger.aclose()  # its budget leases go back
        await engine.dispose()
    check = await money_check_async(url)
    # What this run must have charged: every call, once, at its cost.
    expected = {"calls not charged": calls - check["charged usage rows"],
                "nano-USD not charged": calls * COST - check["charged nano"]}  # fmt: skip
    check["problems"].update({name: off for name, off in expected.items() if off})
    check["ok"] = not check["problems"]
    cuts = statistics.quantiles(latencies, n=100)
    figures = {"calls_per_s": calls / elapsed, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}
    return {**figures, "check": check}


def usage_row(request_id: str, account_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "account_id": account_id,
        "key_id": None,
        "key_label": None,
        "model": "bench",
        "endpoint": "chat",
        "provider": "bench",
        "prompt_tokens": 6,
        "completion_tokens": 7,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "usage_source": "provider",
        "outcome": "completed",
        "status_code": 200,
        "latency_ms": 1,
        "created_at": utcnow(),
    }


async def measure_on_own_database(
    db: str, postgres: str, tmp: Path, calls: int, concurrency: int, leases: bool
) -> dict[str, Any]:
    if db == "sqlite":
        path = tmp / f"money-{uuid.uuid4().hex[:8]}.db"
        return await measure(f"sqlite+aiosqlite:///{path}", calls, concurrency, leases)
    url, drop = await asyncio.to_thread(fresh_pg_database, "money_path", plain_url(postgres))
    try:
        return await measure(
            url.replace("postgresql://", "postgresql+asyncpg://", 1), calls, concurrency, leases
        )
    finally:
        await asyncio.to_thread(drop)


def line(figures: dict[str, Any]) -> str:
    verdict = "money exact" if figures["check"]["ok"] else f"MONEY OFF {figures['check']['problems']}"
    return (
        f"{figures['calls_per_s']:8.0f} calls/s  p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:7.2f} ms"
        f"  {verdict}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a database on the server to measure: each measurement creates (and drops) its own there",
    )
    parser.add_argument(
        "--leases", nargs="?", const="on", default="off", choices=["off", "on", "both"],
        help="hold from budget leases (TOLLWAY_BUDGET_LEASES); both: measure each point both ways",
    )  # fmt: skip
    args = parser.parse_args()
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.leases]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for db in ("sqlite", "postgresql"):
            for concurrency in args.concurrency:
                row: list[str] = []
                try:
                    for leases in modes:
                        figures = await measure_on_own_database(
                            db, args.postgres, Path(tmp), args.calls, concurrency, leases
                        )
                        results.append({"db": db, "concurrency": concurrency, "leases": leases, **figures})
                        row.append(("leases " if leases else "per-call ") + line(figures))
                except OSError as exc:
                    print(f"{db}: skipped ({exc})")
                    break
                print(f"{db:<11} concurrency {concurrency:>3}: " + "  |  ".join(row), flush=True)
    print(json.dumps(results))
    return 0 if all(result["check"]["ok"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
