"""The Redis limiter costs one round trip per call (issue 20 step 4), and batching its finishes loses
nothing: counted with Redis's own counters on a Redis of the test's own (conftest.py says why), then
the finishes' effects on the machine's Redis, seen by a second limiter standing for another replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis

from tollway.core.limits import lua
from tollway.core.limits.limiter import Limits
from tollway.core.limits.redis import RedisLimiter

CALLS = 40
EVERYTHING = Limits(rpm=10**6, rpd=10**6, tpm=10**6, concurrency=1)


async def _counters(redis: Redis) -> tuple[int, int]:
    """(client reads Redis has processed, EVALSHA commands it has run), server-wide."""
    info = await redis.info("stats", "commandstats")
    return int(info["total_reads_processed"]), int(info.get("cmdstat_evalsha", {}).get("calls", 0))


async def _call(limiter: RedisLimiter, bucket: str = "k", limits: Limits = EVERYTHING) -> None:
    """One call as the pipeline makes it: admitted (with its key's failed-request check), finished."""
    verdict = await limiter.admit(bucket, limits, 500, "credential")
    assert verdict.allowed and verdict.lease is not None, verdict
    await limiter.finish(verdict.lease, 120)


async def test_n_sequential_calls_cost_redis_n_round_trips_not_2n(
    private_redis_url: str, redis_factory: Callable[..., RedisLimiter]
) -> None:
    """Each call's admission carries the previous call's finish in the same pipeline: per call one read
    of Redis (one round trip) and two scripts run. Concurrency 1 shows the finish ran first: every
    admission found the previous call's slot already freed."""
    limiter = redis_factory(private_redis_url, flush_seconds=60)  # only round trips flush, and aclose
    monitor = Redis.from_url(private_redis_url)
    try:
        await _call(limiter)  # the connection and the scripts, loaded once
        reads, scripts = await _counters(monitor)
        trips = limiter.round_trips
        for _ in range(CALLS):
            await _call(limiter)
        after_reads, after_scripts = await _counters(monitor)
        assert limiter.round_trips - trips == CALLS
        # One read per round trip; the INFO that reads the counters is one too. A pipeline split
        # across two reads would show as one more: allowed, twice over the whole run.
        assert CALLS <= after_reads - reads - 1 <= CALLS + 2
        assert after_scripts - scripts == 2 * CALLS  # an ADMIT and a FINISH each
        slots = f"{limiter.prefix}{{k}}:c"
        assert await monitor.zcard(slots) == 1  # the last call's finish waits for the next round trip
        await limiter.aclose()
        closed_reads, closed_scripts = await _counters(monitor)
        assert closed_scripts - after_scripts == 1 and closed_reads - after_reads <= 3
        assert await monitor.zcard(slots) == 0
    finally:
        await monitor.aclose()


async def test_scripts_redis_forgot_are_loaded_again_and_run_in_order(
    private_redis_url: str, redis_factory: Callable[..., RedisLimiter]
) -> None:
    """After SCRIPT FLUSH a queued finish and the admission behind it both answer NOSCRIPT; they run
    again in their order behind a reload (one more round trip), so the admission sees the slot freed."""
    limiter = redis_factory(private_redis_url, flush_seconds=60)
    monitor = Redis.from_url(private_redis_url)
    try:
        await _call(limiter)
        await monitor.script_flush()
        trips = limiter.round_trips
        await _call(limiter)  # concurrency 1: refused if the admission ran before the finish
        assert limiter.round_trips - trips == 2
        await _call(limiter)
        assert limiter.round_trips - trips == 3
    finally:
        await monitor.aclose()


async def test_a_process_loads_every_script_before_its_first_command(
    private_redis_url: str, redis_factory: Callable[..., RedisLimiter]
) -> None:
    """Redis holds ADMIT but not FINISH (loaded one at a time by someone else). Were FINISH loaded only
    on its NOSCRIPT, the admission behind it would run first and find the slot still held."""
    monitor = Redis.from_url(private_redis_url)
    try:
        await monitor.script_flush()
        await monitor.script_load(lua.ADMIT)
        limiter = redis_factory(private_redis_url, flush_seconds=60)
        for _ in range(3):
            await _call(limiter)
        assert limiter.round_trips == 3
    finally:
        await monitor.aclose()


async def test_a_finish_reaches_the_other_replicas_within_milliseconds_by_itself(
    redis_factory: Callable[..., RedisLimiter],
) -> None:
    """No other call comes: the timer sends the finish (one round trip of its own). The other replica
    sees the slot freed and the token estimate corrected; nominally 5 ms later, bounded here by a
    generous second for a loaded machine."""
    one, other = redis_factory(), redis_factory()
    limits = Limits(rpm=1000, tpm=6000, concurrency=1)
    held = await one.admit("k", limits, 3000)
    assert held.allowed and held.lease is not None
    trips = one.round_trips
    await one.finish(held.lease, 600)
    finished = time.monotonic()
    while not (after := await other.admit("k", limits, 0)).allowed:
        assert after.limit_type == "CONCURRENCY"
        assert time.monotonic() - finished < 1.0, "the finish did not reach Redis"
        await asyncio.sleep(0.001)
    assert one.round_trips - trips == 1
    # 600 tokens used, not the 3000 admitted: remaining 5400 (plus the refill since, 100 tokens a second).
    remaining = int(after.headers()["x-ratelimit-remaining-tokens"])
    assert 5400 <= remaining <= 5400 + 100 * (time.monotonic() - finished) + 2


async def test_aclose_sends_every_queued_finish(redis_factory: Callable[..., RedisLimiter]) -> None:
    one, other = redis_factory(flush_seconds=3600), redis_factory()
    limits = Limits(rpm=1000, tpm=6000, concurrency=5)
    leases = [(await one.admit("k", limits, 600)).lease for _ in range(5)]
    started = time.monotonic()
    for lease in leases:
        assert lease is not None
        await one.finish(lease, 100)
    assert not (await other.admit("k", limits, 0)).allowed  # five slots still held: nothing sent yet
    await one.aclose()
    after = await other.admit("k", limits, 0)
    assert after.allowed, after
    remaining = int(after.headers()["x-ratelimit-remaining-tokens"])
    assert 5500 <= remaining <= 5500 + 100 * (time.monotonic() - started) + 2  # 5 × 100 used, not 5 × 600
    assert await one.renew() == 0


async def test_two_replicas_never_exceed_a_shared_limit_while_finishes_wait(
    redis_factory: Callable[..., RedisLimiter],
) -> None:
    """A finish only frees, so a late one can refuse a call a few ms too long but never admit one too
    many. Whatever is queued where, at most 3 are in flight; once the flushes land, exactly 3 again."""
    a, b = redis_factory(), redis_factory()
    limits = Limits(rpm=10**6, concurrency=3)
    for _ in range(3):
        verdicts = await asyncio.gather(*(r.admit("k", limits, 0) for r in [a, b] * 6))
        admitted = [(r, v.lease) for r, v in zip([a, b] * 6, verdicts, strict=True) if v.allowed]
        assert len(admitted) <= 3
        for limiter, lease in admitted:
            assert lease is not None
            await limiter.finish(lease, 0)
    await asyncio.sleep(0.2)  # forty flush delays
    verdicts = await asyncio.gather(*(r.admit("k", limits, 0) for r in [a, b] * 6))
    assert sum(v.allowed for v in verdicts) == 3
