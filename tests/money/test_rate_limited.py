"""A rate-limited request is refused before any money moves, and the account can see why.

- over a key's requests-per-minute: 429 RATE_LIMITED with `retry-after`, nothing held or charged,
  and one entry in `GET api_keys/rate_limits/log` naming the key, the model, the tier and the limit;
  a queued job alike, before its hold and its job row;
- more than 20 failed requests from one key in 30 s: that key is refused for 30 s with Venice's
  message (a model call by its admission, or at its answer's first byte when it fails before; any
  other route before it runs), nothing charged, while the account's other keys go on.
"""

from __future__ import annotations

import re

import pytest

from tests.money.harness import NANO, Money
from tollway.core.limits.limiter import FAILED_MESSAGE

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
CHAT = {"model": "m-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _key_id(money: Money, account: str) -> str:
    [(key_id,)] = money.rows("select id from api_keys where account_id = ?", account)
    return str(key_id)


def test_over_rpm_is_429_free_of_charge_and_logged(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT, rate_limits={"rpm": 1})
    assert fresh.call(key, "GET", "api_keys/rate_limits/log").json() == {"data": [], "object": "list"}
    first = fresh.call(key, "POST", "chat/completions", json=CHAT)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    charged = fresh.charged(account)
    assert charged > 0

    second = fresh.call(key, "POST", "chat/completions", json=CHAT)
    assert second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < float(second.headers["retry-after"]) <= 60
    assert fresh.charged(account) == charged
    assert fresh.balances(account) == (CREDIT - charged, 0)
    assert len(fresh.fake_requests()) == 1

    [event] = fresh.call(key, "GET", "api_keys/rate_limits/log").json()["data"]
    assert {k: event[k] for k in ("apiKeyId", "modelId", "rateLimitTier", "rateLimitType")} == {
        "apiKeyId": _key_id(fresh, account),
        "modelId": "m-chat",
        "rateLimitTier": "standard",
        "rateLimitType": "RPM",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event["timestamp"]), event


def test_a_job_over_rpm_is_429_before_its_hold(fresh: Money) -> None:
    """A queued job is a request like any other: a key's second one within the minute is refused
    before its quote is held or its job recorded."""
    account, key = fresh.funded(CREDIT, rate_limits={"rpm": 1})
    job = {"model": "m-music", "prompt": "a hum", "duration": 1}
    first = fresh.call(key, "POST", "audio/queue", json=job)
    assert first.status_code == 200, first.text
    fresh.settle_until(account, 1)
    charged = fresh.charged(account)
    second = fresh.call(key, "POST", "audio/queue", json=job)
    assert second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "RATE_LIMITED"
    assert fresh.balances(account) == (CREDIT - charged, 0)
    assert fresh.rows("select count(*) from jobs where account_id = ?", account) == [(1,)]


def test_too_many_failures_block_the_key_not_the_account(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    other_key = fresh.new_key(account)
    bad = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(21):
        assert fresh.call(key, "POST", "chat/completions", json=bad).status_code == 400
    blocked = fresh.call(key, "POST", "chat/completions", json=CHAT)  # refused by its admission
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["error"]["message"] == FAILED_MESSAGE
    assert 25 <= float(blocked.headers["retry-after"]) <= 30
    assert not any(name.startswith("x-ratelimit") for name in blocked.headers)
    # Refused at the first byte of its 400 (it never reached admission), and before it ran elsewhere.
    for method, path, body in (("POST", "chat/completions", bad), ("GET", "models", None)):
        again = fresh.call(key, method, path, json=body)
        assert (again.status_code, again.json()["error"]["message"]) == (429, FAILED_MESSAGE), again.text
    assert fresh.fake_requests() == []
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.call(other_key, "POST", "chat/completions", json=CHAT).status_code == 200
