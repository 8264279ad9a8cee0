"""The failed-request block checked inside an admission (gate.FailedCheck), on both backends: a blocked
credential is refused in the same step as the rate limits and commits nothing; a response that was
never admitted is checked and counted at once; the gate and the content policy's moderation call
take the request's pending check once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from tests.unit.core.access.test_policy import FakeModerator
from tests.unit.core.limits.test_limits import FakeClock, model
from tollway.base.config import ContentPolicyConfig
from tollway.core.access.policy import ContentPolicy
from tollway.core.caller import Caller
from tollway.core.limits.gate import FAILED_CHECK, FailedCheck, RateGate, blocked_error, check_failed_now
from tollway.core.limits.limiter import (
    FAILED_LIMIT,
    FAILED_MESSAGE,
    FailedPolicy,
    Limiter,
    Limits,
    MemoryLimiter,
)
from tollway.core.limits.redis import RedisLimiter
from tollway.errors import ErrorCode, TollwayError


@pytest.fixture(params=["memory", "redis"])
async def limiter(
    request: pytest.FixtureRequest, redis_factory: Callable[..., RedisLimiter]
) -> AsyncIterator[Limiter]:
    yield MemoryLimiter() if request.param == "memory" else redis_factory()


async def _block(limiter: Limiter, subject: str) -> None:
    for _ in range(FAILED_LIMIT + 1):
        await limiter.record_failure(subject)
    assert await limiter.blocked_for(subject) > 29e6


async def test_a_blocked_credential_is_refused_by_its_admission_which_takes_nothing(limiter: Limiter) -> None:
    limits = Limits(rpm=5, tpm=1000, concurrency=1)
    free = await limiter.admit("k", limits, 100, "someone-else")
    assert free.allowed and free.lease is not None  # an unblocked subject changes nothing
    await limiter.finish(free.lease, 100)
    await _block(limiter, "cred")
    refused = await limiter.admit("k", limits, 100, "cred")
    assert (refused.allowed, refused.limit_type, refused.lease) == (False, "BLOCKED", None)
    assert 29e6 < refused.retry_after_us <= 30e6
    assert refused.headers() == {}  # a block is not a rate limit: no x-ratelimit-* headers
    after = await limiter.admit("k", limits, 100)  # no subject: the block is not this call's business
    assert after.allowed
    assert after.headers()["x-ratelimit-remaining-requests"] == "3"  # 5 − 2: the refusal took none
    assert 800 <= int(after.headers()["x-ratelimit-remaining-tokens"]) <= 805


async def test_a_response_never_admitted_is_checked_and_counted_in_one_step(limiter: Limiter) -> None:
    assert await limiter.failed_check("cred", failed=False) == 0
    for _ in range(FAILED_LIMIT):
        assert await limiter.failed_check("cred", failed=True) == 0
    assert await limiter.blocked_for("cred") == 0
    assert await limiter.failed_check("cred", failed=True) == 0  # the 21st: answered, then blocked
    assert 29e6 < await limiter.failed_check("cred", failed=False) <= 30e6


async def test_a_blocked_response_is_not_counted(redis_factory: Callable[..., RedisLimiter]) -> None:
    """Memory: a fake clock shows it (below). Redis: the ring's newest failure stays the 21st."""
    limiter = redis_factory()
    await _block(limiter, "cred")
    ring = f"{limiter.prefix}failed:{{cred}}"
    monitor = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        newest = await monitor.lindex(ring, 0)
        await asyncio.sleep(0.005)  # a counted failure would push a later millisecond
        for _ in range(3):
            assert await limiter.failed_check("cred", failed=True) > 0
        assert await monitor.lindex(ring, 0) == newest
    finally:
        await monitor.aclose()


async def test_a_blocked_response_is_not_counted_in_process() -> None:
    """Were the failures answered during the block counted, a failure just after it would block again."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    await _block(limiter, "cred")
    clock.advance(15)
    for _ in range(FAILED_LIMIT):
        assert await limiter.failed_check("cred", failed=True) > 0
    clock.advance(15.1)
    assert await limiter.failed_check("cred", failed=True) == 0
    assert await limiter.blocked_for("cred") == 0


async def test_the_gate_takes_the_requests_check_once_and_answers_venices_429() -> None:
    limiter = MemoryLimiter(FakeClock())
    gate = RateGate(limiter, {})
    caller = Caller(scope="inference", key_id="key_1", account_id="acct_1", rate_limits={"rpm": 5})
    await _block(limiter, "cred")
    check = FailedCheck("cred", limiter)
    token = FAILED_CHECK.set(check)
    try:
        with pytest.raises(TollwayError) as info:
            await gate.admit(caller, model(), 10)
        assert not check.pending
        assert await check_failed_now() is None  # taken: nothing more to check in this request
        assert (await gate.admit(caller, model(), 10)).headers["x-ratelimit-remaining-requests"] == "4"
    finally:
        FAILED_CHECK.reset(token)
    error = info.value
    assert (error.code, error.message) == (ErrorCode.RATE_LIMITED, FAILED_MESSAGE)
    assert error.headers["retry-after"] == "30" and error.headers["retry-after-ms"] == "30000"
    assert not any(name.startswith("x-ratelimit") for name in error.headers)
    assert await limiter.events("acct_1") == []  # the rate-limit log is for rate limits


async def test_another_limiters_check_is_left_alone() -> None:
    """After a reload the gate still has the process's limiter; a check for another is not its to take."""
    mine, other = MemoryLimiter(), MemoryLimiter()
    await _block(other, "cred")
    check = FailedCheck("cred", other)
    token = FAILED_CHECK.set(check)
    try:
        caller = Caller(scope="inference", key_id="key_1", account_id="acct_1")
        assert (await RateGate(mine, {}).admit(caller, model(), 10)).lease is not None
        assert check.pending
    finally:
        FAILED_CHECK.reset(token)


async def test_a_blocked_credential_never_reaches_the_moderation_model() -> None:
    limiter = MemoryLimiter()
    moderator = FakeModerator(set())
    policy = ContentPolicy(ContentPolicyConfig(), moderator)
    await policy.check("sfw", ["no check pending: moderated"])
    await _block(limiter, "cred")
    token = FAILED_CHECK.set(FailedCheck("cred", limiter))
    try:
        with pytest.raises(TollwayError) as info:
            await policy.check("sfw", ["hello"])
    finally:
        FAILED_CHECK.reset(token)
    assert info.value.message == FAILED_MESSAGE
    assert moderator.seen == [["no check pending: moderated"]]


async def test_the_operators_policy_and_a_keys_own_limit_on_both_backends(limiter: Limiter) -> None:
    """TOLLWAY_FAILED_REQUEST_*: more than `limit` failures block for `block_seconds`; a key's own
    limit replaces the operator's for its credential only."""
    limiter.failed_policy = FailedPolicy(limit=2, window_seconds=60, block_seconds=5)
    for _ in range(2):
        await limiter.record_failure("tuned")
    assert await limiter.blocked_for("tuned") == 0
    await limiter.record_failure("tuned")
    assert 4e6 < await limiter.blocked_for("tuned") <= 5e6  # the block's length, not the window's
    for _ in range(5):
        assert await limiter.failed_check("own", failed=True, limit=5) == 0
    assert await limiter.blocked_for("own") == 0
    assert await limiter.failed_check("own", failed=True, limit=5) == 0  # the 6th: answered, then blocked
    assert await limiter.blocked_for("own") > 0
    message = blocked_error(5e6, limiter.failed_policy).message
    assert "(> 2 in 60s)" in message and "wait 5s" in message
    assert blocked_error(5e6, FailedPolicy()).message == FAILED_MESSAGE  # Venice's words at its numbers
