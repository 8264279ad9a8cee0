"""`Idempotency-Key`: a retried call is metered once; the first result is replayed."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx2
import pytest

from tests.contract.conftest import Tollway

pytestmark = pytest.mark.slow
BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two three"}]}


def call(tollway: Tollway, key: str, idem: str, body: dict[str, object] = BODY) -> httpx2.Response:
    return httpx2.post(
        f"{tollway.url}/v1/chat/completions",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {key}", "idempotency-key": idem},
    )


def test_a_repeated_key_is_replayed_and_metered_once(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    first = call(fresh_fake, key, "order-1")
    balance_after_first = fresh_fake.ledger_sums(account_id)[0]
    second = call(fresh_fake, key, "order-1")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert fresh_fake.fake_calls() == 1
    assert fresh_fake.ledger_sums(account_id)[0] == balance_after_first < 1_000_000_000
    different = call(fresh_fake, key, "order-1", {**BODY, "temperature": 0.1})
    assert different.status_code == 400 and different.json()["error"]["param"] == "Idempotency-Key"
    # Another account may use the same key string: keys are per account.
    _, other_key = funded("1.00")
    assert "idempotent-replayed" not in call(fresh_fake, other_key, "order-1").headers


def test_streams_replay_and_a_running_call_is_409(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    balance = fresh_fake.ledger_sums(account_id)[0]
    stream_body = {**BODY, "stream": True}
    first = call(fresh_fake, key, "s-1", stream_body)
    replay = call(fresh_fake, key, "s-1", stream_body)
    assert replay.text == first.text and first.text.rstrip().endswith("data: [DONE]")
    assert fresh_fake.fake_calls() == 1
    charged_once = fresh_fake.ledger_sums(account_id)[0]
    assert charged_once < balance
    fresh_fake.script({"type": "delay_first_byte", "seconds": 2})
    results: list[httpx2.Response] = []
    slow = threading.Thread(target=lambda: results.append(call(fresh_fake, key, "slow-1")))
    slow.start()
    import time

    time.sleep(0.8)
    busy = call(fresh_fake, key, "slow-1")
    slow.join()
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "CONFLICT"
    assert results[0].status_code == 200


def test_a_failed_call_is_forgotten_so_its_retry_runs(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    fresh_fake.script({"type": "status", "status": 500})
    assert call(fresh_fake, key, "retry-1").status_code == 502
    assert fresh_fake.ledger_sums(account_id)[0] == 1_000_000_000  # the failure cost nothing
    retried = call(fresh_fake, key, "retry-1")
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert fresh_fake.fake_calls() == 2
