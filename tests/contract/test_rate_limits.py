"""Rate limits against real servers: exact counts, headers on buffered and streamed responses, the SDK's
retry, the failed-request limiter, Venice's endpoints, and two replicas sharing one limit via Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import redis

from tests.contract.servers import Tollway, errors_logged, postgres_database, shared_redis_url, start_tollway
from tests.support.processes import ServerProcess
from tests.support.redis_server import private_redis, round_trip_counters

pytestmark = pytest.mark.slow
BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 20}
FAILED_MESSAGE = (
    "Too many failed attempts (> 20) resulting in a non-success status code. Please wait 30s and try "
    "again. See https://docs.venice.ai/api-reference/rate-limiting for more information."
)
HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def post(url: str, key: str, body: dict[str, Any] | None = None, path: str = "/v1/chat/completions") -> Any:
    return httpx2.post(url + path, json=body or BODY, headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_rpm_10_gives_exactly_10_then_429_with_retry_headers(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00", rate_limits={"rpm": 10})
    responses = [post(tollway.url, key) for _ in range(11)]
    assert [r.status_code for r in responses] == [200] * 10 + [429]
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in responses[:10]]
    assert remaining == list(range(9, -1, -1))
    assert all(r.headers["x-ratelimit-limit-requests"] == "10" for r in responses)
    assert responses[0].headers["x-ratelimit-reset-requests"].endswith("s")
    refused = responses[10]
    body = refused.json()["error"]
    assert body["code"] == "RATE_LIMITED" and body["type"] == "rate_limit_error"
    assert body["request_id"] == refused.headers["x-request-id"]
    retry_ms = int(refused.headers["retry-after-ms"])
    assert 0 < retry_ms <= 6000 and 1 <= int(refused.headers["retry-after"]) <= 6
    assert "x-should-retry" not in refused.headers  # per-minute limits are transient
    # The refused call reserved nothing.
    assert tollway.account(account_id)["reserved_usd"] == "0.000000000"
    log = httpx2.get(
        f"{tollway.url}/api/v1/api_keys/rate_limits/log", headers={"authorization": f"Bearer {key}"}
    ).json()
    assert log["object"] == "list"
    [event] = log["data"]
    assert event["rateLimitType"] == "RPM" and event["modelId"] == "fake-chat"
    assert set(event) == {"apiKeyId", "modelId", "rateLimitTier", "rateLimitType", "timestamp"}


def test_daily_cap_refusal_says_do_not_retry(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("5.00", rate_limits={"rpm": 100, "rpd": 2})
    statuses = [post(tollway.url, key) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["x-should-retry"] == "false"


def test_headers_are_on_buffered_and_streamed_responses_from_the_first_byte(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("5.00", rate_limits={"rpm": 50, "tpm": 100_000})
    buffered = post(tollway.url, key)
    assert buffered.status_code == 200
    assert all(name in buffered.headers for name in HEADERS), buffered.headers
    assert buffered.headers["x-ratelimit-limit-tokens"] == "100000"
    with httpx2.stream(
        "POST",
        f"{tollway.url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as streamed:
        # The headers are here before any of the body has been read.
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert all(name in streamed.headers for name in HEADERS), streamed.headers
        assert streamed.headers["x-ratelimit-remaining-requests"] == "48"
        assert streamed.read().rstrip().endswith(b"data: [DONE]")
    # The token estimate was corrected to the actual usage once the stream settled.
    after = post(tollway.url, key)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) > 100_000 - 3 * 60


def test_openai_sdk_retry_waits_retry_after_ms_then_succeeds(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """rpm 10 refills one request every 6 s. Spend the burst, then call half a second before the next
    slot opens: the 429 says wait ~500 ms (Retry-After rounds that up to 1 s), and the SDK's retry
    comes after retry-after-ms, not after a whole second."""
    _, key = funded("5.00", rate_limits={"rpm": 10})
    seen: list[tuple[float, int, dict[str, str]]] = []
    first = post(tollway.url, key)
    first_seen = time.monotonic()  # the first admission happened before this: next slot ≤ +6 s
    assert first.status_code == 200
    assert all(post(tollway.url, key).status_code == 200 for _ in range(9))
    time.sleep(max(0.0, first_seen + 5.5 - time.monotonic()))

    def record(response: httpx2.Response) -> None:
        seen.append((time.monotonic(), response.status_code, dict(response.headers)))

    http_client = openai.DefaultHttpxClient(event_hooks={"response": [record]})
    client = openai.OpenAI(
        base_url=f"{tollway.url}/v1", api_key=key, max_retries=3, timeout=30, http_client=http_client
    )
    reply = client.chat.completions.create(**BODY)  # type: ignore[call-overload]
    assert reply.choices[0].message.content
    statuses = [s for _, s, _ in seen]
    assert statuses[0] == 429 and statuses[-1] == 200, statuses
    first_at, _, first_headers = seen[0]
    wait_ms = int(first_headers["retry-after-ms"])
    assert wait_ms < 1000 and first_headers["retry-after"] == "1"
    # The next attempt came after retry-after-ms (± scheduling), well before the rounded Retry-After.
    gap = seen[1][0] - first_at
    assert wait_ms / 1000 - 0.05 <= gap < wait_ms / 1000 + 0.35, (gap, wait_ms)


def test_failed_request_limiter_blocks_after_21_failures_with_venice_message(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("5.00")
    bad = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    statuses = [post(tollway.url, key, bad).status_code for _ in range(21)]
    assert statuses == [400] * 21
    blocked = post(tollway.url, key)  # a good request, from a key that just failed 21 times
    assert blocked.status_code == 429
    error = blocked.json()["error"]
    assert error["message"] == FAILED_MESSAGE
    assert error["request_id"] == blocked.headers["x-request-id"]
    assert 29 <= int(blocked.headers["retry-after"]) <= 30
    # Other keys are not affected.
    _, other = funded("5.00")
    assert post(tollway.url, other).status_code == 200


def test_a_gemini_keys_failures_count_too(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    _, key = funded("5.00")
    url = f"{tollway.url}/v1beta/models/no-such-model:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    statuses = [httpx2.post(url, json=body, headers={"x-goog-api-key": key}).status_code for _ in range(21)]
    assert statuses == [400] * 21
    assert post(tollway.url, key).status_code == 429  # the same key, on the OpenAI surface


def test_upstream_failures_and_rate_limits_do_not_count_against_a_key(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """25 upstream 500s (502 to the client) and 25 rate-limited calls: not the key's failures, so its
    next call is served. seed-002 tells clients to retry 500, 503 and 429: that must not end in a block."""
    _, key = funded("5.00", rate_limits={"rpm": 1})
    fresh_fake.script(*[{"type": "status", "status": 500}] * 26)  # one try a call on this server
    assert post(fresh_fake.url, key).status_code == 502  # the one call rpm=1 lets through
    assert {post(fresh_fake.url, key).status_code for _ in range(25)} == {429}
    _, other = funded("5.00", rate_limits={"rpm": 100})
    assert [post(fresh_fake.url, other).status_code for _ in range(25)] == [502] * 25
    fresh_fake.fake("POST", "reset")
    assert post(fresh_fake.url, other).status_code == 200


def test_rate_limits_endpoint_has_venice_shape(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("2.50", rate_limits={"rpm": 7})
    for prefix in ("/api/v1", "/v1"):
        response = httpx2.get(
            f"{tollway.url}{prefix}/api_keys/rate_limits", headers={"authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["accessPermitted"] is True
        assert data["apiTier"] == {"id": "standard", "isCharged": True}
        assert data["balances"] == {"USD": 2.5}
        assert data["nextEpochBegins"].endswith("T00:00:00.000Z")
        models = {m["apiModelId"]: m["rateLimits"] for m in data["rateLimits"]}
        assert {"amount": 7, "type": "RPM"} in models["fake-chat"]
        assert {"amount": 750000, "type": "TPM"} in models["fake-chat"]  # Venice's medium-LLM class


def test_key_creation_is_limited_to_20_per_minute(tollway: Tollway) -> None:
    import concurrent.futures
    import time

    # The default for an account's own admin key (the operator's mints are exempt: test_admin_accounts.py).
    _, admin_key = tollway.funded("1.00", scope="admin")
    auth = {"authorization": f"Bearer {admin_key}"}
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: httpx2.post(f"{tollway.url}/v1/keys", json={}, headers=auth).status_code, range(26)
            )
        )
    elapsed = time.monotonic() - started
    # 20 at once, then one more every 3 s (GCRA at 20/min): a slow machine may earn a few extra.
    assert set(statuses) == {201, 429}
    assert 20 <= statuses.count(201) <= 20 + int(elapsed // 3)


# -- two replicas ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[tuple[Tollway, Tollway]]:
    redis_url = shared_redis_url()
    database_url = postgres_database()
    env = {
        "TOLLWAY_REDIS_URL": redis_url,
        "TOLLWAY_REDIS_KEY_PREFIX": f"test-replicas-{uuid.uuid4().hex[:8]}:",
        "TOLLWAY_SECRET": uuid.uuid4().hex,  # replicas must share the key pepper
    }
    tmp: Path = tmp_path_factory.mktemp("replicas")
    first = start_tollway(tmp / "a", fake_upstream.base_url, database_url, env) if _mk(tmp / "a") else None
    assert first is not None
    try:
        _mk(tmp / "b")
        second = start_tollway(tmp / "b", fake_upstream.base_url, database_url, env)
    except BaseException:
        first.stop()
        raise
    yield (
        Tollway(first, database_url, fake_upstream.base_url),
        Tollway(second, database_url, fake_upstream.base_url),
    )
    first.stop()
    second.stop()


def _mk(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return True


def test_two_replicas_share_one_limit_exactly(replicas: tuple[Tollway, Tollway]) -> None:
    a, b = replicas
    account_id = a.new_account("5.00")
    key = a.new_key(account_id, rate_limits={"rpm": 10})

    async def storm() -> list[httpx2.Response]:
        async with httpx2.AsyncClient(timeout=30) as client:
            calls = [
                client.post(
                    f"{server.url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
                )
                for server in [a, b] * 8
            ]
            return list(await asyncio.gather(*calls))

    responses = asyncio.run(storm())
    ok = [r for r in responses if r.status_code == 200]
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 6, (statuses, errors_logged([a, b]))
    served_by = {str(r.url).rsplit("/v1", 1)[0] for r in ok}
    assert served_by == {a.url, b.url}, "both replicas served some of the 10"
    # The remaining counts agree across replicas: each of 9..0 handed out exactly once.
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))
    # And afterwards both replicas agree the key is spent.
    assert post(a.url, key).status_code == 429 and post(b.url, key).status_code == 429


def test_a_key_blocked_on_one_replica_is_refused_by_the_other_that_never_saw_it_fail(
    replicas: tuple[Tollway, Tollway],
) -> None:
    """b has no failure of these keys in mind, so it leaves their check to the call: a good call is
    refused by its admission (nothing held or charged), a bad one at its answer's first byte."""
    a, b = replicas
    bad = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    keys = []
    for _ in range(2):
        account_id = a.new_account("5.00")
        key = a.new_key(account_id)
        assert [post(a.url, key, bad).status_code for _ in range(21)] == [400] * 21
        keys.append((account_id, key, time.monotonic()))  # blocked for 30 s from about now
    (good_account, good_key, good_blocked), (_, bad_key, bad_blocked) = keys
    for key, body, blocked in ((good_key, BODY, good_blocked), (bad_key, bad, bad_blocked)):
        refused = post(b.url, key, body)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["message"] == FAILED_MESSAGE
        # What is left of the 30 s block, whole seconds rounded up: a loaded machine takes seconds
        # to send the second key's 21 calls, and the first key's block runs on meanwhile.
        left = 30 - (time.monotonic() - blocked)
        assert int(left) <= int(refused.headers["retry-after"]) <= 30
    assert post(b.url, good_key).status_code == 429  # b now checks it before the call
    account = a.account(good_account)
    assert (account["balance_usd"], account["reserved_usd"]) == ("5.000000000", "0.000000000")


@pytest.fixture(scope="module")
def counted(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess
) -> Iterator[tuple[Tollway, str]]:
    """A server alone on a Redis of its own (whose counters are then its own), and that Redis's URL.
    Its calls' ends wait for the next round trip (up to 5 s), so the count does not depend on how
    fast the machine is; the 5 ms default has its own tests (tests/unit/core/limits)."""
    with private_redis() as redis_url:
        env = {
            "TOLLWAY_REDIS_URL": redis_url,
            "TOLLWAY_LIMITS_FLUSH_SECONDS": "5",
            "TOLLWAY_SECRET": uuid.uuid4().hex,
        }
        database_url = postgres_database()
        server = start_tollway(tmp_path_factory.mktemp("counted"), fake_upstream.base_url, database_url, env)
        try:
            yield Tollway(server, database_url, fake_upstream.base_url), redis_url
        finally:
            server.stop()


def test_a_model_call_costs_redis_one_round_trip(counted: tuple[Tollway, str]) -> None:
    """N chats in a row, every limit on (rpm, rpd, tpm, one call at a time) and the failed-request check
    too: N round trips to Redis, each an ADMIT behind the previous call's FINISH. Before issue 20 each
    call cost three (the check, ADMIT, FINISH). One at a time: each call found the last one's slot
    freed, so its finish ran before its admission."""
    server, redis_url = counted
    _, key = server.funded("5.00", rate_limits={"rpm": 10_000, "concurrency": 1})
    assert post(server.url, key).status_code == 200  # the connections, the scripts
    monitor = redis.Redis.from_url(redis_url)
    try:
        reads, scripts = round_trip_counters(monitor)
        calls = 30
        statuses = [post(server.url, key).status_code for _ in range(calls)]
        after_reads, after_scripts = round_trip_counters(monitor)
    finally:
        monitor.close()
    assert statuses == [200] * calls
    assert after_scripts - scripts == 2 * calls
    assert calls <= after_reads - reads - 1 <= calls + 3  # the second INFO is a read; slack for a split


def test_a_blocked_key_hammering_costs_one_round_trip_and_no_script(counted: tuple[Tollway, str]) -> None:
    """Once this process has seen a key fail, its calls are checked before they run (a plain PTTL), as
    on the other routes: a blocked client's call costs one read of Redis and runs nothing else."""
    server, redis_url = counted
    _, key = server.funded("5.00")
    bad = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    assert [post(server.url, key, bad).status_code for _ in range(21)] == [400] * 21
    monitor = redis.Redis.from_url(redis_url)
    try:
        reads, scripts = round_trip_counters(monitor)
        refused = [post(server.url, key, body) for body in (bad, BODY) * 5]
        after_reads, after_scripts = round_trip_counters(monitor)
    finally:
        monitor.close()
    assert {(r.status_code, r.json()["error"]["message"]) for r in refused} == {(429, FAILED_MESSAGE)}
    assert after_scripts == scripts  # no ADMIT, no FAILED count: refused before the call
    assert 10 <= after_reads - reads - 1 <= 10 + 2
