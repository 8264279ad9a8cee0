"""The limiter: GCRA arithmetic with a fake clock, the in-process backend, and the Redis backend against
the machine's Redis (two limiter instances stand for two replicas), including Redis being down."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest

from tollway.base.config import ModelConfig, RateLimitsConfig
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.limits.gate import RateGate, resolve_limits, retry_headers
from tollway.core.limits.limiter import (
    EVENT_LOG_SIZE,
    FAILED_MESSAGE,
    Limiter,
    Limits,
    MemoryLimiter,
    format_duration,
)
from tollway.errors import ErrorCode, TollwayError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def model(model_type: str = "text", **extra: object) -> CatalogModel:
    config = ModelConfig.model_validate(
        {
            "id": "m",
            "type": model_type,
            "routes": [{"provider": "p", "model": "x"}],
            "pricing": {"input": "1"},
        }
        | extra
    )
    from decimal import Decimal

    return CatalogModel(config, Decimal(1))


# -- pure pieces --------------------------------------------------------------------------------


def test_reset_durations_use_openai_format() -> None:
    assert format_duration(12_000) == "12ms"
    assert format_duration(999_000) == "999ms"
    assert format_duration(6_000_000) == "6s"
    assert format_duration(6_500_000) == "6.5s"
    assert format_duration(90_000_000) == "1m30s"
    assert format_duration(7_200_000_000) == "2h0m0s"
    assert format_duration(0) == "0ms"


def test_retry_headers_round_up_and_mark_daily_caps_not_retryable() -> None:
    assert retry_headers(1_500) == {"retry-after": "1", "retry-after-ms": "2"}
    assert retry_headers(6_000_000) == {"retry-after": "6", "retry-after-ms": "6000"}
    assert retry_headers(6_000_001, transient=False)["x-should-retry"] == "false"
    # Never 0: a client told to wait 0 would retry at once. A thousandth over a second is 2 s.
    assert retry_headers(1) == {"retry-after": "1", "retry-after-ms": "1"}
    assert retry_headers(1_001_000) == {"retry-after": "2", "retry-after-ms": "1001"}


async def test_the_rate_limit_log_keeps_the_newest_events() -> None:
    limiter = MemoryLimiter()
    for n in range(EVENT_LOG_SIZE + 5):
        await limiter.log_event("acct", {"n": n})
    events = await limiter.events("acct")
    assert [e["n"] for e in events] == list(range(EVENT_LOG_SIZE + 4, 4, -1))


def test_limits_resolve_key_then_plan_then_model_then_class() -> None:
    text = model()
    assert resolve_limits(None, None, text) == Limits(75, 54_000, 750_000, None)  # llm-medium class
    plan = RateLimitsConfig(rpm=60)
    assert resolve_limits(None, plan, text) == Limits(60, 54_000, 750_000, None)
    assert resolve_limits({"rpm": 10, "concurrency": 2}, plan, text) == Limits(10, 54_000, 750_000, 2)
    own = model(rate_limits={"rpd": 7}, rate_class="llm-small")
    assert resolve_limits(None, None, own) == Limits(500, 7, 1_000_000, None)
    assert resolve_limits(None, None, model("image")).tpm is None


def test_plans_default_to_seed_004_and_yaml_overrides_them() -> None:
    gate = RateGate(MemoryLimiter(), {"custom": {"default": RateLimitsConfig(rpm=5, concurrency=1)}})
    caller = Caller(scope="inference", key_id="k", account_id="a", plan="free")
    assert gate.limits_for(caller, model()).rpm == 10
    assert gate.limits_for(caller, model("image")).rpm == 5
    pro = Caller(scope="inference", key_id="k", account_id="a", plan="pro")
    assert gate.limits_for(pro, model()).rpm == 300
    custom = Caller(scope="inference", key_id="k", account_id="a", plan="custom")
    assert gate.limits_for(custom, model("embedding")) == Limits(5, 288_000, 1_000_000, 1)


# -- in-process backend, fake clock -------------------------------------------------------------


async def test_a_plain_hit_refills_one_emission_interval_after_the_burst() -> None:
    """Key creation's limit (`hit`): 20 an hour as a burst of 20, then one more every 3 minutes (within
    the limiter's 1 µs tolerance: an interval even 180 µs longer refuses the call at 3 minutes)."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    hits = [await limiter.hit("keys:a", 20, 3600) for _ in range(21)]
    assert [allowed for allowed, _ in hits] == [True] * 20 + [False]
    assert hits[-1][1] == pytest.approx(180e6)  # retry after one emission interval
    clock.advance(180 - 0.01)
    assert not (await limiter.hit("keys:a", 20, 3600))[0]
    clock.advance(0.01)
    assert (await limiter.hit("keys:a", 20, 3600))[0]
    assert not (await limiter.hit("keys:a", 20, 3600))[0]
    assert (await limiter.hit("keys:b", 20, 3600))[0]  # another bucket is untouched


async def test_the_request_headers_show_whichever_limit_has_less_left() -> None:
    """Per minute and per day both set: the x-ratelimit-*-requests headers name the one with fewer
    requests left, not the smaller limit. After a minute's burst of 10 the per-minute budget refills
    while the day's (12) does not: 9 left of the minute's 10, 1 of the day's 12, so the day's shows."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    limits = Limits(rpm=10, rpd=12)
    for _ in range(10):
        assert (await limiter.admit("b", limits, 0)).allowed
    clock.advance(60)
    verdict = await limiter.admit("b", limits, 0)
    assert verdict.allowed
    headers = verdict.headers()
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("12", "1")


async def test_the_token_headers_show_the_budget_left_after_the_estimate() -> None:
    clock = FakeClock()
    verdict = await MemoryLimiter(clock).admit("b", Limits(tpm=100), 30)
    assert verdict.allowed and verdict.headers() == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "70",
        "x-ratelimit-reset-tokens": "18s",  # 30 tokens at 100 a minute
    }


async def test_burst_then_refill_and_reset_headers() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    limits = Limits(rpm=10)
    verdicts = [await limiter.admit("b", limits, 0) for _ in range(11)]
    assert [v.allowed for v in verdicts] == [True] * 10 + [False]
    first = verdicts[0].headers()
    assert first == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "6s",
    }
    assert verdicts[9].headers()["x-ratelimit-remaining-requests"] == "0"
    assert verdicts[9].headers()["x-ratelimit-reset-requests"] == "1m0s"
    refused = verdicts[10]
    assert refused.limit_type == "RPM" and refused.transient
    # A refusal reports the bucket as it stands: empty, full again a minute from now.
    assert refused.headers() == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    assert refused.retry_after_us == pytest.approx(6_000_000)
    clock.advance(5.9)
    assert not (await limiter.admit("b", limits, 0)).allowed
    clock.advance(0.1)  # one emission interval (60 s / 10) after the burst: exactly one more
    assert (await limiter.admit("b", limits, 0)).allowed
    assert not (await limiter.admit("b", limits, 0)).allowed
    clock.advance(60)
    again = await limiter.admit("b", limits, 0)
    assert again.allowed and again.headers()["x-ratelimit-remaining-requests"] == "9"


async def test_daily_cap_is_not_transient_and_independent_of_rpm() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    limits = Limits(rpm=100, rpd=3)
    for _ in range(3):
        assert (await limiter.admit("b", limits, 0)).allowed
    refused = await limiter.admit("b", limits, 0)
    assert not refused.allowed and refused.limit_type == "RPD" and not refused.transient
    # remaining-requests reports whichever limit is tighter: the daily one
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"
    assert refused.retry_after_us == pytest.approx(8 * 3600 * 1e6)
    clock.advance(8 * 3600)
    assert (await limiter.admit("b", limits, 0)).allowed


async def test_tokens_are_admitted_with_the_request_and_corrected_after() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    limits = Limits(rpm=1000, tpm=1000)
    first = await limiter.admit("b", limits, 600)
    assert first.allowed and first.headers()["x-ratelimit-remaining-tokens"] == "400"
    assert first.headers()["x-ratelimit-reset-tokens"] == "36s"
    refused = await limiter.admit("b", limits, 600)
    assert not refused.allowed and refused.limit_type == "TPM"
    # Neither dimension moved: the request count was not spent by the refused call.
    assert refused.headers()["x-ratelimit-remaining-requests"] == "999"
    assert first.lease is not None
    await limiter.finish(first.lease, 100)  # the call used 100 tokens, not 600
    after = await limiter.admit("b", limits, 600)
    assert after.allowed and after.headers()["x-ratelimit-remaining-tokens"] == "300"
    # An estimate above the whole limit is capped, so it waits for a full bucket instead of never running.
    clock.advance(60)
    big = await limiter.admit("b", limits, 50_000)
    assert big.allowed and big.headers()["x-ratelimit-remaining-tokens"] == "0"


async def test_concurrency_slots_are_released_once() -> None:
    limiter = MemoryLimiter(FakeClock())
    limits = Limits(rpm=100, concurrency=2)
    a, b = [await limiter.admit("b", limits, 0) for _ in range(2)]
    assert a.allowed and b.allowed
    refused = await limiter.admit("b", limits, 0)
    assert not refused.allowed and refused.limit_type == "CONCURRENCY"
    assert a.lease is not None
    await limiter.finish(a.lease, 0)
    await limiter.finish(a.lease, 0)  # idempotent: a second release must not free b's slot
    assert (await limiter.admit("b", limits, 0)).allowed
    assert not (await limiter.admit("b", limits, 0)).allowed


async def test_an_in_flight_slot_is_a_lease_renewed_while_its_call_lives() -> None:
    """A slot lives `slot_seconds` unless renewed; renewed, a long call keeps it; finished, it is gone."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock, slot_seconds=30)
    limits = Limits(rpm=1000, concurrency=1)
    held = await limiter.admit("b", limits, 0)
    assert held.allowed and held.lease is not None
    for _ in range(10):  # five minutes of a call, renewed every 20 s (the maintenance loop)
        clock.advance(20)
        assert await limiter.renew() == 1
        refused = await limiter.admit("b", limits, 0)
        assert not refused.allowed and refused.limit_type == "CONCURRENCY"
    await limiter.finish(held.lease, 0)
    assert await limiter.renew() == 0
    crashed = await limiter.admit("b", limits, 0)  # its call never finishes, nobody renews it
    assert crashed.allowed
    clock.advance(29)
    assert not (await limiter.admit("b", limits, 0)).allowed
    clock.advance(1.5)
    assert (await limiter.admit("b", limits, 0)).allowed  # freed one lease after its last renewal


async def test_renew_extends_every_slot_held_and_counts_them() -> None:
    """Three calls in flight over two buckets: renewing counts all three, and each keeps its slot."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock, slot_seconds=30)
    limits = Limits(rpm=1000, concurrency=2)
    held = [await limiter.admit(bucket, limits, 0) for bucket in ("a", "a", "b")]
    assert all(verdict.allowed for verdict in held)
    clock.advance(20)
    assert await limiter.renew() == 3
    clock.advance(20)  # 40 s after admission: only the renewal keeps them
    assert not (await limiter.admit("a", limits, 0)).allowed
    for verdict in held:
        assert verdict.lease is not None
        await limiter.finish(verdict.lease, 0)
    assert await limiter.renew() == 0


async def test_failed_request_block_lasts_thirty_seconds() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    for _ in range(20):
        await limiter.record_failure("s")
    assert await limiter.blocked_for("s") == 0
    await limiter.record_failure("s")  # the 21st failure within 30 s
    assert await limiter.blocked_for("s") == pytest.approx(30e6)
    clock.advance(29.9)
    assert await limiter.blocked_for("s") > 0
    clock.advance(0.2)
    assert await limiter.blocked_for("s") == 0
    assert "Too many failed attempts (> 20)" in FAILED_MESSAGE


async def test_the_failed_request_rule_counts_only_the_last_21_failures() -> None:
    """An old failure outside the 30 s does not hide 21 recent ones, and 21 spread wider block nothing."""
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    await limiter.record_failure("s")
    clock.advance(31)
    for _ in range(20):
        await limiter.record_failure("s")
    assert await limiter.blocked_for("s") == 0  # 21 failures, but over 31 s
    clock.advance(1)
    await limiter.record_failure("s")  # the last 21 all lie within 30 s
    assert await limiter.blocked_for("s") == pytest.approx(30e6)


async def test_the_failed_request_window_is_30_seconds_to_the_microsecond() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    await limiter.record_failure("wide")
    clock.advance(30.00002)  # the 21st failure 30 s and 20 µs after the first: outside the window
    for _ in range(20):
        await limiter.record_failure("wide")
    assert await limiter.blocked_for("wide") == 0
    await limiter.record_failure("exact")
    clock.advance(30)  # exactly 30 s: inside
    for _ in range(20):
        await limiter.record_failure("exact")
    assert await limiter.blocked_for("exact") == pytest.approx(30e6)


async def test_a_failure_at_the_instant_a_block_ends_starts_the_next_block() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    for _ in range(21):
        await limiter.record_failure("s")
    clock.advance(30)  # the block ends now; the ring still holds 20 failures of 30 s ago
    await limiter.record_failure("s")
    assert await limiter.blocked_for("s") == pytest.approx(30e6)


async def test_gate_refusal_is_a_429_with_retry_headers_and_a_log_entry() -> None:
    clock = FakeClock()
    gate = RateGate(MemoryLimiter(clock), {})
    caller = Caller(scope="inference", key_id="key_1", account_id="acct_1", rate_limits={"rpm": 1})
    ticket = await gate.admit(caller, model(), 10)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(TollwayError) as info:
        await gate.admit(caller, model(), 10)
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.headers["retry-after"] == "60"
    assert info.value.headers["retry-after-ms"] == "60000"
    assert "x-should-retry" not in info.value.headers
    [event] = await gate.limiter.events("acct_1")
    assert event["apiKeyId"] == "key_1" and event["rateLimitType"] == "RPM" and event["modelId"] == "m"


# -- Redis backend ------------------------------------------------------------------------------


async def test_redis_two_replicas_share_one_limit_exactly(redis_factory: Callable[..., Limiter]) -> None:
    one, two = redis_factory(), redis_factory()
    limits = Limits(rpm=10, tpm=10_000)
    verdicts = await asyncio.gather(*(r.admit("k", limits, 100) for r in [one, two] * 15))
    assert sum(v.allowed for v in verdicts) == 10
    remaining = sorted(int(v.headers()["x-ratelimit-remaining-requests"]) for v in verdicts if v.allowed)
    assert remaining == list(range(10))  # each admission saw the other replica's
    refused = [v for v in verdicts if not v.allowed]
    assert all(v.limit_type == "RPM" and 0 < v.retry_after_us <= 6_000_000 for v in refused)


async def test_redis_tokens_concurrency_and_correction(redis_factory: Callable[..., Limiter]) -> None:
    limiter = redis_factory()
    limits = Limits(rpm=100, tpm=1000, concurrency=1)
    first = await limiter.admit("k", limits, 600)
    assert first.allowed and first.headers()["x-ratelimit-remaining-tokens"] == "400"
    busy = await limiter.admit("k", limits, 1)
    assert not busy.allowed and busy.limit_type == "CONCURRENCY"
    assert first.lease is not None
    await limiter.finish(first.lease, 100)
    second = await limiter.admit("k", limits, 600)
    assert second.allowed
    assert int(second.headers()["x-ratelimit-remaining-tokens"]) in (299, 300)  # Redis time moves


async def test_redis_slots_are_leases_renewed_by_their_own_replica(
    redis_factory: Callable[..., Limiter],
) -> None:
    """Each replica renews only the slots it holds; a replica that stops renewing (it crashed) loses
    its slot one lease later, while the renewed one stays past many leases."""
    # Leases of 2 s renewed every 0.25 s: a renewal may come 1.75 s late on a loaded machine.
    alive, crashed = redis_factory(slot_seconds=2.0), redis_factory(slot_seconds=2.0)
    limits = Limits(rpm=1000, concurrency=2)
    kept = await alive.admit("k", limits, 0)
    lost = await crashed.admit("k", limits, 0)
    assert kept.allowed and lost.allowed
    assert not (await alive.admit("k", limits, 0)).allowed
    loop = asyncio.get_running_loop()
    past = loop.time() + 4.5  # more than two leases after both were taken
    while loop.time() < past:
        await asyncio.sleep(0.25)
        assert await alive.renew() == 1
    third = await alive.admit("k", limits, 0)  # the crashed replica's slot has expired
    assert third.allowed
    assert not (await alive.admit("k", limits, 0)).allowed  # `kept` still holds its slot
    assert kept.lease is not None and third.lease is not None
    await alive.finish(kept.lease, 0)
    assert await alive.renew() == 1  # `third` only


async def test_redis_failed_request_block_and_key_creation(redis_factory: Callable[..., Limiter]) -> None:
    limiter = redis_factory()
    for _ in range(21):
        await limiter.record_failure("subject")
    assert 29e6 < await limiter.blocked_for("subject") <= 30e6
    assert await limiter.blocked_for("other") == 0
    hits = [await limiter.hit("keys:a", 20, 60) for _ in range(21)]
    assert [h[0] for h in hits] == [True] * 20 + [False]
    await limiter.log_event("acct", {"modelId": "m"})
    assert await limiter.events("acct") == [{"modelId": "m"}]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _each_policy_answers(closed: Limiter, opened: Limiter) -> None:
    """Redis failing: `closed` refuses with 503, `open` admits without limits (and without headers)."""
    with pytest.raises(TollwayError) as info:
        await closed.admit("k", Limits(rpm=1), 0)
    assert info.value.code is ErrorCode.SERVICE_UNAVAILABLE
    verdict = await opened.admit("k", Limits(rpm=1), 0)
    assert verdict.allowed and verdict.headers() == {}


async def test_redis_down_closed_is_503_and_open_admits_without_hanging(
    redis_factory: Callable[..., Limiter],
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    closed, opened = redis_factory(url), redis_factory(url, on_error="open")
    started = time.monotonic()
    await _each_policy_answers(closed, opened)
    await opened.record_failure("s")  # abuse counting never raises
    assert await closed.blocked_for("s") == 0
    assert time.monotonic() - started < 5  # no hang: a hung call would wait the 10 s socket timeout


async def test_redis_unresponsive_server_times_out(redis_factory: Callable[..., Limiter]) -> None:
    """A server that accepts connections but never answers (a hung Redis) → 503 within the deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        limiter = redis_factory(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", socket_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TollwayError):
            await limiter.admit("k", Limits(rpm=1), 0)
        assert time.monotonic() - started < 5  # the 0.3 s socket timeout answered, not the 30 s deadline
    finally:
        listener.close()


async def _slow_redis_proxy(delay: float) -> asyncio.Server:
    """A TCP proxy to the real Redis that holds every answer back for `delay` seconds (a slow Redis)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float) -> None:
        try:
            while chunk := await reader.read(65536):
                await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", 6379)
        await asyncio.gather(pipe(client_reader, redis_writer, 0), pipe(redis_reader, client_writer, delay))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_redis_slower_than_the_deadline_is_cut_off(redis_factory: Callable[..., Limiter]) -> None:
    """The deadline bounds a Redis that answers, but slowly: closed → 503, open → admitted unlimited."""
    server = await _slow_redis_proxy(delay=5.0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"redis://127.0.0.1:{port}/0"
        closed = redis_factory(url, deadline=0.5)
        opened = redis_factory(url, deadline=0.5, on_error="open")
        started = time.monotonic()
        await _each_policy_answers(closed, opened)
        # Both answered long before the slow Redis did (5 s each): the deadline cut them off.
        assert time.monotonic() - started < 5.0
    finally:
        server.close()


@pytest.mark.parametrize("socket_timeout", [None, 0.3])
async def test_a_busy_event_loop_is_not_read_as_a_redis_failure(
    redis_factory: Callable[..., Limiter], socket_timeout: float | None
) -> None:
    """Redis answers within 0.05 s, but the process is busy for 0.8 s in the meantime (a burst of
    calls on a loaded host). The timeouts are wall time on the event loop: unset, they are the
    deadline (2 s) and the call is admitted; a socket timeout set shorter than the stall fails it,
    which is why it is not the default."""
    server = await _slow_redis_proxy(delay=0.05)
    try:
        url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
        limiter = redis_factory(url, pool_timeout=None, socket_timeout=socket_timeout, deadline=2.0)
        await limiter.admit("warm", Limits(rpm=100), 0)  # the connection and the scripts are ready
        asyncio.get_running_loop().call_later(0.01, time.sleep, 0.8)  # while the admission awaits Redis
        if socket_timeout is None:
            assert (await limiter.admit("busy", Limits(rpm=100), 0)).allowed
        else:
            with pytest.raises(TollwayError) as refused:
                await limiter.admit("busy", Limits(rpm=100), 0)
            assert refused.value.code is ErrorCode.SERVICE_UNAVAILABLE
    finally:
        server.close()
