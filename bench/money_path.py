"""The money path alone: reserve + settle per call, on SQLite and PostgreSQL.

    .venv/bin/python bench/money_path.py [--calls 2000] [--concurrency 1 16] [--postgres URL] [--leases]

Measures what admission and settlement add to every inference call (DESIGN §3 steps 7 and 10):
one conditional UPDATE + ledger insert + reservation insert, then the settlement transaction with
its usage row. Prints calls/s and p50/p99 latency per database and concurrency; no upstream involved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.store.db import create_engine
from tollway.store.migrate import upgrade_async


async def measure(url: str, calls: int, concurrency: int, leases: bool = False) -> dict[str, float]:
    await upgrade_async(url)
    engine = create_engine(url)
    ledger = Ledger(engine, budget_leases=leases)
    account = await Accounts(engine, ledger).create("bench", credit_nano=10**15)
    latencies: list[float] = []
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            request_id = f"req_{uuid.uuid4().hex}"
            started = time.perf_counter()
            await ledger.reserve(account.id, request_id, 213_000)
            row = {
                "request_id": request_id,
                "account_id": account.id,
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
            await ledger.settle(account.id, request_id, 20_000, row)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await ledger.aclose()  # its budget leases go back
    checker = Ledger(engine)
    balance, reserved = await checker.balances(account.id)
    assert reserved == 0 and balance == 10**15 - calls * 20_000, (balance, reserved)
    assert await checker.ledger_sums(account.id) == (balance, reserved)
    await checker.aclose()
    await engine.dispose()
    cuts = statistics.quantiles(latencies, n=100)
    return {"calls_per_s": calls / elapsed, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--leases", action="store_true", help="hold from budget leases (TOLLWAY_BUDGET_LEASES)"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", "postgresql": args.postgres}
        for name, url in databases.items():
            for concurrency in args.concurrency:
                try:
                    figures = await measure(url, args.calls, concurrency, args.leases)
                except OSError as exc:
                    print(f"{name}: skipped ({exc})")
                    break
                results.append({"db": name, "concurrency": concurrency, **figures})
                print(
                    f"{name:<11} concurrency {concurrency:>3}: {figures['calls_per_s']:8.0f} calls/s   "
                    f"p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms",
                    flush=True,
                )
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
