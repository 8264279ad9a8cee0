"""The in-process limiter's edges (core/limits/limiter.py), each a survivor of the mutation run
(docs/testing.md): the reset format's one-second boundary, a concurrency slot that expires exactly
now, a concurrency refusal's retry, the lease an admission hands back without a token limit, a
finish that runs twice, a block with under a microsecond left, and a key whose failure limit
changes while failures are counted."""

from __future__ import annotations

from tests.unit.core.limits.test_limits import FakeClock
from tollway.core.limits.limiter import FailedPolicy, Lease, Limits, MemoryLimiter, format_duration


def test_one_second_is_written_in_seconds_and_just_under_it_in_milliseconds() -> None:
    assert format_duration(999_000) == "999ms"
    assert format_duration(1_000_000) == "1s"
    assert format_duration(1_000_001) == "1.001s"


async def test_without_a_token_limit_the_lease_carries_no_tokens_and_no_slot() -> None:
    limiter = MemoryLimiter(FakeClock())
    verdict = await limiter.admit("k", Limits(rpm=5), 1234)
    assert verdict.lease == Lease("k", 0, 0, None)
    assert verdict.lease is not None and verdict.lease.slot is None


async def test_a_call_estimated_at_zero_tokens_takes_none_of_the_minute() -> None:
    limiter = MemoryLimiter(FakeClock())
    verdict = await limiter.admit("k", Limits(tpm=100), 0)
    assert verdict.lease is not None and verdict.lease.tokens == 0
    assert verdict.headers()["x-ratelimit-remaining-tokens"] == "100"


async def test_a_slot_whose_expiry_is_now_is_free_and_a_concurrency_refusal_retries_in_a_second() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock, slot_seconds=30)
    limits = Limits(concurrency=1)
    held = await limiter.admit("k", limits, 1)
    assert held.allowed
    refused = await limiter.admit("k", limits, 1)
    assert (refused.allowed, refused.limit_type, refused.retry_after_us) == (False, "CONCURRENCY", 1e6)
    clock.advance(30)  # the crashed call's slot expires exactly now
    assert (await limiter.admit("k", limits, 1)).allowed


async def test_a_second_finish_gives_back_nothing_more() -> None:
    """tpm 60: a token a second. 60 estimated, 30 used: 30 come back once, not twice."""
    limiter = MemoryLimiter(FakeClock())
    limits = Limits(tpm=60, concurrency=1)
    first = await limiter.admit("k", limits, 60)
    assert first.lease is not None
    await limiter.finish(first.lease, 30)
    await limiter.finish(first.lease, 30)
    assert not (await limiter.admit("k", limits, 31)).allowed  # only 30 tokens are free
    second = await limiter.admit("k", limits, 30)
    assert second.allowed


async def test_a_block_with_under_a_microsecond_left_still_refuses() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    limiter.failed_policy = FailedPolicy(limit=1, window_seconds=30, block_seconds=30)
    for _ in range(2):
        await limiter.record_failure("cred")
    clock.advance(30 - 0.5e-6)
    left = await limiter.blocked_for("cred")
    assert 0 < left < 1
    assert await limiter.failed_check("cred", failed=True) == left
    verdict = await limiter.admit("k", Limits(rpm=5), 1, "cred")
    assert (verdict.allowed, verdict.limit_type) == (False, "BLOCKED")


async def test_a_lower_failure_limit_counts_the_failures_already_seen_and_only_the_newest() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    # Two failures under a limit of 5, then the key's limit becomes 2: the third blocks.
    for _ in range(2):
        await limiter.record_failure("kept", limit=5)
    await limiter.record_failure("kept", limit=2)
    assert await limiter.blocked_for("kept") > 0
    # Failures long ago, then the limit drops to 1: only the newest two decide (both recent).
    for _ in range(2):
        await limiter.record_failure("old", limit=5)
    clock.advance(100)
    await limiter.record_failure("old", limit=1)
    assert await limiter.blocked_for("old") == 0  # one recent failure is not more than 1
    await limiter.record_failure("old", limit=1)
    assert await limiter.blocked_for("old") > 0
