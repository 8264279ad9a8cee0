"""The rate gate's edges (core/limits/gate.py), each a survivor of the mutation run (docs/testing.md):
the pending failed-request check of an unblocked credential, an operator's own failure policy in
the 429, the check marked blocked on both paths, the fallback plan, a ticket finished without a
count, and the 429 of a rate limit: its words and a daily cap's no-retry header."""

from __future__ import annotations

import pytest

from tests.unit.core.limits.test_limits import FakeClock, model
from tollway.core.caller import Caller
from tollway.core.limits.gate import DEFAULT_PLANS, FAILED_CHECK, FailedCheck, RateGate, check_failed_now
from tollway.core.limits.limiter import FailedPolicy, MemoryLimiter
from tollway.errors import ErrorCode, TollwayError

POLICY = FailedPolicy(limit=1, window_seconds=10, block_seconds=20)  # not Venice's: its own message


async def _blocked_limiter(clock: FakeClock) -> MemoryLimiter:
    limiter = MemoryLimiter(clock)
    limiter.failed_policy = POLICY
    for _ in range(2):
        await limiter.record_failure("cred")
    return limiter


async def test_an_unblocked_credential_s_check_passes_and_is_taken() -> None:
    check = FailedCheck("cred", MemoryLimiter(FakeClock()))
    token = FAILED_CHECK.set(check)
    try:
        assert await check_failed_now() is None
    finally:
        FAILED_CHECK.reset(token)
    assert (check.pending, check.blocked) == (False, False)


async def test_a_blocked_credential_s_check_answers_the_operator_s_policy() -> None:
    clock = FakeClock()
    limiter = await _blocked_limiter(clock)
    check = FailedCheck("cred", limiter)
    token = FAILED_CHECK.set(check)
    try:
        with pytest.raises(TollwayError) as info:
            await check_failed_now()
    finally:
        FAILED_CHECK.reset(token)
    assert check.blocked
    assert (info.value.code, info.value.message) == (ErrorCode.RATE_LIMITED, POLICY.message)


async def test_a_check_with_under_a_microsecond_of_block_left_still_refuses() -> None:
    clock = FakeClock()
    limiter = await _blocked_limiter(clock)
    clock.advance(20 - 0.5e-6)
    check = FailedCheck("cred", limiter)
    token = FAILED_CHECK.set(check)
    try:
        with pytest.raises(TollwayError):
            await check_failed_now()
    finally:
        FAILED_CHECK.reset(token)


async def test_an_admission_refused_by_the_block_marks_the_check_and_answers_the_operator_s_policy() -> None:
    clock = FakeClock()
    limiter = await _blocked_limiter(clock)
    gate = RateGate(limiter, {})
    caller = Caller(scope="inference", key_id="key_1", account_id="acct_1")
    check = FailedCheck("cred", limiter)
    token = FAILED_CHECK.set(check)
    try:
        with pytest.raises(TollwayError) as info:
            await gate.admit(caller, model(), 10)
    finally:
        FAILED_CHECK.reset(token)
    assert check.blocked
    assert info.value.message == POLICY.message


def test_an_unknown_plan_gets_the_standard_plan() -> None:
    gate = RateGate(MemoryLimiter(), {})
    assert gate.plan_limits("no-such-plan", "text") == DEFAULT_PLANS["standard"]["text"]
    assert gate.plan_limits("no-such-plan", "image") == DEFAULT_PLANS["standard"]["image"]


async def test_a_ticket_finished_without_a_count_gives_back_its_whole_estimate() -> None:
    """tpm 60 is a token a second: a finish() that counted even one token would refuse the next 60."""
    gate = RateGate(MemoryLimiter(FakeClock()), {})
    caller = Caller(scope="inference", key_id="key_1", account_id="acct_1", rate_limits={"tpm": 60})
    ticket = await gate.admit(caller, model(), 60)
    await ticket.finish()
    await gate.admit(caller, model(), 60)


async def test_a_rate_limit_429_names_its_limit_and_a_daily_cap_says_not_to_retry() -> None:
    clock = FakeClock()
    gate = RateGate(MemoryLimiter(clock), {})
    per_minute = Caller(scope="inference", key_id="key_m", account_id="acct_1", rate_limits={"rpm": 1})
    per_day = Caller(scope="inference", key_id="key_d", account_id="acct_1", rate_limits={"rpd": 1})
    for caller in (per_minute, per_day):
        await gate.admit(caller, model(), 1)
    with pytest.raises(TollwayError) as minute:
        await gate.admit(per_minute, model(), 1)
    with pytest.raises(TollwayError) as day:
        await gate.admit(per_day, model(), 1)
    assert minute.value.code == ErrorCode.RATE_LIMITED
    assert minute.value.message == (
        "Rate limit reached (RPM) for 'm' on this key. Retry after the time in the Retry-After header."
    )
    assert "x-should-retry" not in minute.value.headers
    assert day.value.message.startswith("Rate limit reached (RPD) for 'm'")
    assert day.value.headers["x-should-retry"] == "false"
    events = await gate.limiter.events("acct_1")
    assert [e["rateLimitType"] for e in events] == ["RPD", "RPM"]
