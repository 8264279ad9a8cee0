"""Limiter admission cost per call, in-process and Redis: p50/p99 in µs (DESIGN §3: steps 2–7 ≪ 1 ms).

Usage: python bench/limiter.py [--calls N] [--redis redis://127.0.0.1:6379/0]
Each call is one `admit` (rpm + rpd + tpm + concurrency checked and committed together) plus the
`finish` that corrects tokens and frees the slot, as the pipeline does per request. Limits are set
high so every call is admitted: the common path is what we measure. On Redis a finish is queued and
rides in the next admission's round trip (core/limits/redis.py), so its time shows there; the
round trips per call are counted too (1.00 expected). `--cpu`: instead, 64 calls at a time for
8 s, and the process CPU per admit + finish (what a busy server pays per call on its one core).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from tollway.core.limits.limiter import Limiter, Limits, MemoryLimiter

LIMITS = Limits(rpm=10**9, rpd=10**9, tpm=10**12, concurrency=10**6)


async def measure(limiter: Limiter, calls: int) -> tuple[list[float], list[float]]:
    admit_us: list[float] = []
    finish_us: list[float] = []
    for i in range(calls):
        bucket = f"key_{i % 100}:llm-medium"  # 100 keys, like a busy node
        t0 = time.perf_counter()
        verdict = await limiter.admit(bucket, LIMITS, 500)
        t1 = time.perf_counter()
        assert verdict.allowed and verdict.lease is not None
        verdict.headers()
        await limiter.finish(verdict.lease, 120)
        t2 = time.perf_counter()
        admit_us.append((t1 - t0) * 1e6)
        finish_us.append((t2 - t1) * 1e6)
    return admit_us, finish_us


async def cpu_per_call(limiter: Limiter, seconds: float = 8.0, concurrency: int = 64) -> tuple[float, float]:
    """Calls per second and process CPU µs per admit + finish, `concurrency` callers at once."""
    calls = 0
    stop = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal calls
        while time.monotonic() < stop:
            verdict = await limiter.admit(f"key_{i}:llm-medium", LIMITS, 500)
            assert verdict.lease is not None
            await limiter.finish(verdict.lease, 120)
            calls += 1

    cpu, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return calls / (time.monotonic() - started), (time.process_time() - cpu) / calls * 1e6


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def report(name: str, admit_us: list[float], finish_us: list[float]) -> None:
    print(
        f"{name:<10} admit p50 {pct(admit_us, 50):8.1f} µs  p99 {pct(admit_us, 99):8.1f} µs   "
        f"finish p50 {pct(finish_us, 50):8.1f} µs  p99 {pct(finish_us, 99):8.1f} µs   (n={len(admit_us)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--cpu", action="store_true", help="CPU per call at 64 concurrent calls")
    args = parser.parse_args()
    if args.cpu:
        from tollway.core.limits.redis import RedisLimiter

        for name, limiter in (
            ("in-process", MemoryLimiter()),
            ("redis", RedisLimiter(args.redis, prefix=f"bench:{uuid.uuid4().hex[:8]}:")),
        ):
            await cpu_per_call(limiter, 1.0)  # warm up
            rate, cpu_us = await cpu_per_call(limiter)
            print(f"{name:<10} {rate:8.0f} calls/s  {cpu_us:6.1f} µs CPU per admit + finish (64 at a time)")
            await limiter.aclose()
        return
    memory = MemoryLimiter()
    await measure(memory, 1000)  # warm up
    report("in-process", *await measure(memory, args.calls))
    from tollway.core.limits.redis import RedisLimiter

    redis = RedisLimiter(args.redis, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    try:
        await measure(redis, 500)  # warm up: connection and script cache
        trips, calls = redis.round_trips, min(args.calls, 10_000)
        report("redis", *await measure(redis, calls))
        print(f"redis      {(redis.round_trips - trips) / calls:.2f} round trips per call")
    except Exception as exc:  # Redis absent: say so, keep the in-process figures
        print(f"redis      skipped: {exc!r}")
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
