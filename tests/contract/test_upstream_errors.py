"""Upstream errors keep their meaning, on every upstream dialect (providers/base.py `classify`):

- an upstream 400 is the client's 400 (`VALIDATION`), its message passed on without the upstream's
  key, URL or host, never retried and never sent to another route;
- an upstream 401/403 is the operator's misconfiguration: another route serves if the catalog has
  one (the log says why), else a 502 `UPSTREAM_AUTH_FAILED` that does not say "safe to retry";
- an upstream 429 moves to the next route, else (after the retries it asks for) a 429
  `UPSTREAM_RATE_LIMITED` with `retry-after`, the upstream's own when it gave one.

None of them charges anything. The `protocols` server: 2 retries, retry-after honoured up to 3 s.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx2
import pytest

from tests.contract.servers import UPSTREAM_KEY, Protocols

pytestmark = pytest.mark.slow
KINDS = ["openai", "anthropic", "gemini"]
PROVIDERS = {"openai": "fake", "anthropic": "anth", "gemini": "gem"}
HELLO = [{"role": "user", "content": "hello there"}]
CREDIT = 5_000_000_000
REFUSAL = "Invalid 'temperature': 3 is greater than the maximum of 2"


def chat(server: Protocols, key: str, model: str, stream: bool = False) -> httpx2.Response:
    body = {"model": model, "messages": HELLO, "max_tokens": 50, "stream": stream}
    return httpx2.post(
        f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body, timeout=30
    )


def assert_refused(response: httpx2.Response, status: int, code: str, attempts: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-tollway-attempts"] == str(attempts)
    return error


def assert_nothing_leaked(server: Protocols, kind: str, text: str) -> None:
    host_port = server.upstreams[kind].removeprefix("http://")
    for secret in (UPSTREAM_KEY, host_port, "127.0.0.1"):
        assert secret not in text


def untouched(server: Protocols, account: str) -> None:
    assert server.ledger_sums(account) == (CREDIT, 0, CREDIT, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_400_is_the_clients_400_without_the_upstreams_secrets(
    fresh_protocols: Protocols, kind: str
) -> None:
    account, key = fresh_protocols.funded()
    url = fresh_protocols.upstreams[kind]
    # Upstreams echo what they were sent: here our key, their URL and their address.
    leaky = f"{REFUSAL} (key {UPSTREAM_KEY}, POST {url}/v1/x, host {url.removeprefix('http://')})"
    for stream in (False, True):
        fresh_protocols.script_on(kind, {"type": "status", "status": 400, "message": leaky})
        before = fresh_protocols.calls_on(kind)
        response = chat(fresh_protocols, key, f"refused-{kind}", stream)
        error = assert_refused(response, 400, "VALIDATION", attempts=1)
        assert error["type"] == "invalid_request_error"
        assert REFUSAL in error["message"] and "you were not charged" in error["message"]
        assert_nothing_leaked(fresh_protocols, kind, response.text)
        assert fresh_protocols.calls_on(kind) == before + 1  # never retried
    assert UPSTREAM_KEY not in fresh_protocols.process.log_text()
    untouched(fresh_protocols, account)


def test_an_upstream_400_reaches_anthropic_and_gemini_clients_in_their_envelopes(
    fresh_protocols: Protocols,
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", {"type": "status", "status": 400, "message": REFUSAL})
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic.Anthropic(base_url=fresh_protocols.url, api_key=key, max_retries=0).messages.create(
            model="refused-openai", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert REFUSAL in caught.value.message
    fresh_protocols.script_on("anthropic", {"type": "status", "status": 400, "message": REFUSAL})
    response = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/refused-anthropic:generateContent",
        headers={"x-goog-api-key": key},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert REFUSAL in response.json()["error"]["message"]
    untouched(fresh_protocols, account)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", KINDS)
def test_refused_credentials_are_the_operators_502_not_safe_to_retry(
    fresh_protocols: Protocols, kind: str, status: int
) -> None:
    account, key = fresh_protocols.funded()
    echo = f"Incorrect API key provided: {UPSTREAM_KEY}"  # what OpenAI answers
    for stream in (False, True):
        fresh_protocols.script_on(kind, {"type": "status", "status": status, "message": echo})
        before = fresh_protocols.calls_on(kind)
        response = chat(fresh_protocols, key, f"auth-{kind}", stream)
        error = assert_refused(response, 502, "UPSTREAM_AUTH_FAILED", attempts=1)
        assert "operator" in error["message"] and "Safe to retry" not in error["message"]
        assert f"answered HTTP {status}" in error["message"]
        assert_nothing_leaked(fresh_protocols, kind, response.text)
        assert fresh_protocols.calls_on(kind) == before + 1  # the same bad key is not tried again
    assert UPSTREAM_KEY not in fresh_protocols.process.log_text()
    untouched(fresh_protocols, account)


@pytest.mark.parametrize("kind", KINDS)
def test_refused_credentials_fall_over_to_the_next_route_and_say_so_in_the_log(
    fresh_protocols: Protocols, kind: str
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "status", "status": 401})
    response = chat(fresh_protocols, key, f"failover-{kind}")
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-provider"] == "fake" and response.headers["x-tollway-attempts"] == "2"
    assert "check the provider's API key" in fresh_protocols.process.log_text()
    balance, reserved, ledger_sum, _ = fresh_protocols.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance < CREDIT  # the serving route's answer, billed


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_429_moves_to_the_next_route_at_once(fresh_protocols: Protocols, kind: str) -> None:
    _, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "status", "status": 429, "retry_after": 2})
    started = time.monotonic()
    response = chat(fresh_protocols, key, f"failover-{kind}", stream=True)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2  # the rate-limited route's retry-after is not waited out
    assert response.headers["x-tollway-provider"] == "fake" and response.headers["x-tollway-attempts"] == "2"


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_429_on_the_last_route_is_a_429_with_retry_after(
    fresh_protocols: Protocols, kind: str
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, *[{"type": "status", "status": 429}] * 3)
    response = chat(fresh_protocols, key, f"limited-{kind}")
    error = assert_refused(response, 429, "UPSTREAM_RATE_LIMITED", attempts=3)  # retried as policy says
    assert error["type"] == "rate_limit_error" and "you were not charged" in error["message"]
    assert response.headers["retry-after"] == "1"  # the upstream named none: the shortest wait
    untouched(fresh_protocols, account)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_429_passes_its_retry_after_on(
    fresh_protocols: Protocols, kind: str, stream: bool
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "status", "status": 429, "retry_after": 30})
    response = chat(fresh_protocols, key, f"limitedlong-{kind}", stream)
    # 30 s is longer than this server waits (3 s): no retry, the client is told to wait instead.
    assert_refused(response, 429, "UPSTREAM_RATE_LIMITED", attempts=1)
    assert response.headers["retry-after"] == "30" and response.headers["retry-after-ms"] == "30000"
    assert "Retry in 30 s" in response.json()["error"]["message"]
    untouched(fresh_protocols, account)
