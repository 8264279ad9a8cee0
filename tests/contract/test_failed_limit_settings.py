"""The failed-request limit as the operator tunes it (TOLLWAY_FAILED_REQUEST_*) and as a key overrides
it (`rate_limits.failed_requests`, 0 = off), its block answered in the caller's own dialect with
`retry-after`, on a real server with the official SDKs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.contract.servers import Tollway, start_tollway
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
LIMIT, WINDOW, BLOCK = 3, 20, 4
BAD = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
GOOD = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("failed-limit")
    database_url = f"sqlite:///{tmp}/tollway.db"
    env = {
        "TOLLWAY_FAILED_REQUEST_MAX": str(LIMIT),
        "TOLLWAY_FAILED_REQUEST_WINDOW_SECONDS": str(WINDOW),
        "TOLLWAY_FAILED_REQUEST_BLOCK_SECONDS": str(BLOCK),
    }
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


def chat(server: Tollway, key: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def test_the_operators_numbers_block_and_unblock(tuned: Tollway) -> None:
    _, key = tuned.funded("1.00")
    assert [chat(tuned, key, BAD).status_code for _ in range(LIMIT + 1)] == [400] * (LIMIT + 1)
    blocked = chat(tuned, key, GOOD)
    assert blocked.status_code == 429
    assert f"(> {LIMIT} in {WINDOW}s)" in blocked.json()["error"]["message"]
    assert 1 <= int(blocked.headers["retry-after"]) <= BLOCK
    time.sleep(BLOCK + 0.2)
    assert chat(tuned, key, GOOD).status_code == 200  # the block lasted BLOCK seconds, not the window


def test_a_key_can_turn_the_limit_off_or_tighten_it(tuned: Tollway) -> None:
    account = tuned.new_account("1.00")
    free = tuned.new_key(account, rate_limits={"failed_requests": 0})
    assert {chat(tuned, free, BAD).status_code for _ in range(3 * LIMIT)} == {400}
    assert chat(tuned, free, GOOD).status_code == 200
    strict = tuned.new_key(account, rate_limits={"failed_requests": 1})
    assert [chat(tuned, strict, BAD).status_code for _ in range(2)] == [400, 400]
    assert chat(tuned, strict, GOOD).status_code == 429
    refused = tuned.admin("POST", f"/accounts/{account}/keys", {"rate_limits": {"failed_requests": -1}})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "rate_limits.failed_requests"


def test_the_block_answers_in_each_callers_dialect(tuned: Tollway) -> None:
    _, key = tuned.funded("1.00")
    for _ in range(LIMIT + 1):
        chat(tuned, key, BAD)
    claude = anthropic.Anthropic(base_url=tuned.url, api_key=key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.RateLimitError) as by_anthropic:
        claude.messages.create(model="fake-chat", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    body = by_anthropic.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert int(by_anthropic.value.response.headers["retry-after"]) <= BLOCK
    with pytest.raises(anthropic.RateLimitError):
        claude.models.list()  # refused before the route runs: still Anthropic's envelope
    options = types.HttpOptions(base_url=f"{tuned.url}/", api_version="v1beta")
    google = genai.Client(api_key=key, http_options=options)
    with pytest.raises(genai_errors.ClientError) as by_gemini:
        google.models.generate_content(model="fake-chat", contents="hi")
    assert by_gemini.value.code == 429 and by_gemini.value.status == "RESOURCE_EXHAUSTED"
    assert by_gemini.value.response is not None
