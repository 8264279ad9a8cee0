"""Routing against the three fake upstream protocols: retries before the first byte, retry-after,
fallback on connection refused, the per-request deadline, no retry after the first byte, circuit
breakers, parameter allow-lists, and upstream keys that never leak.

The `protocols` server runs with 2 retries, 0.05 s backoff, a 2 s deadline, and a breaker that
opens after 3 consecutive failures for 2 s (tests/contract/conftest.py PROTOCOL_ENV)."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest

from tests.contract.servers import Protocols

pytestmark = pytest.mark.slow
KINDS = ["openai", "anthropic", "gemini"]
HELLO = [{"role": "user", "content": "hello there"}]


def chat(server: Protocols, key: str, model: str, stream: bool = False, **extra: Any) -> httpx2.Response:
    body = {"model": model, "messages": HELLO, "max_tokens": 50, "stream": stream, **extra}
    return httpx2.post(
        f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body, timeout=30
    )


def untouched(server: Protocols, account: str) -> bool:
    return server.ledger_sums(account)[:2] == (5_000_000_000, 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_500_then_success_is_retried_and_billed_once(
    fresh_protocols: Protocols, kind: str, stream: bool
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "status", "status": 500})
    response = chat(fresh_protocols, key, f"retry-{kind}", stream)
    assert response.status_code == 200, response.text
    assert response.headers["x-tollway-attempts"] == "2"
    assert (
        response.headers["x-tollway-provider"]
        == {"openai": "fake", "anthropic": "anth", "gemini": "gem"}[kind]
    )
    assert "echo: hello there" in response.text or "there" in response.text
    assert fresh_protocols.calls_on(kind) == 2
    balance, reserved, ledger_sum, _ = fresh_protocols.ledger_sums(account)
    assert 0 < 5_000_000_000 - balance < 100_000 and reserved == 0 and ledger_sum == balance


@pytest.mark.parametrize("kind", KINDS)
def test_429_retry_after_is_honoured(fresh_protocols: Protocols, kind: str) -> None:
    _, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "status", "status": 429, "retry_after": 1})
    started = time.monotonic()
    response = chat(fresh_protocols, key, f"ratelimit-{kind}")
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 1.0
    assert response.headers["x-tollway-attempts"] == "2"


def test_connection_refused_falls_back_to_the_next_route(fresh_protocols: Protocols) -> None:
    _, key = fresh_protocols.funded()
    # 3 refused attempts on the dead route (which opens its circuit), then the next route; the
    # second call skips the open circuit entirely.
    for stream, attempts in ((False, "4"), (True, "1")):
        response = chat(fresh_protocols, key, "fallback-chat", stream)
        assert response.status_code == 200, response.text
        assert response.headers["x-tollway-provider"] == "fake"
        assert response.headers["x-tollway-attempts"] == attempts


def test_all_routes_failing_is_502_and_free(fresh_protocols: Protocols) -> None:
    account, key = fresh_protocols.funded()
    response = chat(fresh_protocols, key, "all-dead")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert untouched(fresh_protocols, account)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_slow_first_byte_past_the_deadline_is_504_and_free(
    fresh_protocols: Protocols, kind: str, stream: bool
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "delay_first_byte", "seconds": 3})
    started = time.monotonic()
    response = chat(fresh_protocols, key, f"deadline-{kind}", stream)
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
    assert time.monotonic() - started < 2.9
    assert untouched(fresh_protocols, account)


@pytest.mark.parametrize("kind", KINDS)
def test_cut_mid_stream_is_not_retried_and_ends_in_an_error_event(
    fresh_protocols: Protocols, kind: str
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "cut", "after_chunks": 1})
    response = chat(fresh_protocols, key, f"cut-{kind}", stream=True)
    assert response.status_code == 200
    assert '"code":"UPSTREAM_ERROR"' in response.text and "[DONE]" not in response.text
    assert fresh_protocols.calls_on(kind) == 1
    balance, reserved, ledger_sum, _ = fresh_protocols.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance


@pytest.mark.parametrize("kind", KINDS)
def test_4xx_is_never_retried(fresh_protocols: Protocols, kind: str) -> None:
    # A 400 is the client's (test_upstream_errors.py); a 404 is the route's, with no other route here.
    account, key = fresh_protocols.funded()
    for status, answer in ((400, 400), (404, 502)):
        fresh_protocols.script_on(kind, {"type": "status", "status": status})
        before = fresh_protocols.calls_on(kind)
        response = chat(fresh_protocols, key, f"four-{kind}")
        assert response.status_code == answer and response.headers["x-tollway-attempts"] == "1"
        assert fresh_protocols.calls_on(kind) == before + 1
    assert untouched(fresh_protocols, account)


def test_circuit_opens_after_consecutive_failures_then_half_opens(fresh_protocols: Protocols) -> None:
    _, key = fresh_protocols.funded()
    fresh_protocols.script_on("gemini", *[{"type": "status", "status": 503}] * 3)
    assert chat(fresh_protocols, key, "breaker-gemini").status_code == 502  # 3 attempts: the circuit opens
    assert fresh_protocols.calls_on("gemini") == 3
    refused = chat(fresh_protocols, key, "breaker-gemini")
    assert refused.status_code == 502 and "cooling down" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] and fresh_protocols.calls_on("gemini") == 3  # not even tried
    time.sleep(2.2)
    probe = chat(fresh_protocols, key, "breaker-gemini")
    assert probe.status_code == 200 and fresh_protocols.calls_on("gemini") == 4  # half-open probe closes it
    assert chat(fresh_protocols, key, "breaker-gemini").status_code == 200


def test_allowed_params_drop_what_the_upstream_does_not_take(fresh_protocols: Protocols) -> None:
    _, key = fresh_protocols.funded()
    response = chat(fresh_protocols, key, "strict-chat", temperature=0.3, top_p=0.5, seed=3, logit_bias={})
    assert response.status_code == 200, response.text
    sent = fresh_protocols.last_request("openai")
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50
    assert not {"top_p", "seed", "logit_bias"} & set(sent)


@pytest.mark.parametrize("model", ["leak-openai", "leak-anthropic", "leak-gemini"])
def test_an_upstream_401_never_leaks_the_upstream_key(fresh_protocols: Protocols, model: str) -> None:
    account, key = fresh_protocols.funded()
    for stream in (False, True):
        response = chat(fresh_protocols, key, model, stream)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "UPSTREAM_AUTH_FAILED"
        assert "sk-wrong-upstream-secret-123" not in response.text
        assert "sk-wrong-upstream-secret-123" not in str(response.headers)
    assert "sk-wrong-upstream-secret-123" not in fresh_protocols.process.log_text()
    assert untouched(fresh_protocols, account)
