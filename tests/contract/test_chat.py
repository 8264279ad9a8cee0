"""Chat completions through the official openai SDK against a real server: buffered, streamed, billed."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import openai
import pytest

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "one two three four five six"}]


def cost_nano(prompt: int, completion: int) -> int:
    return prompt * 1_000 + completion * 2_000  # fake-chat: $1.00 in, $2.00 out per 1M tokens


def test_balance_headers_show_only_what_the_key_may_spend(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """A reseller's customer key never sees the wholesale balance: a key with a consumption limit sees
    what it can still spend, an admin key the account's balance, any other key nothing."""
    account_id, customer = funded("5.00")
    limited = fresh_fake.new_key(account_id, consumption_limit={"usd": "1.00", "period": "day"})
    admin = fresh_fake.new_key(account_id, scope="admin")

    def balance_seen(key: str, stream: bool = False) -> tuple[str | None, str | None]:
        call = fresh_fake.client(key).chat.completions.with_raw_response.create
        raw = call(model="fake-chat", messages=MESSAGES, max_tokens=50, stream=stream)
        if stream:
            for _ in raw.parse():
                pass
        return raw.headers.get("x-balance-usd"), raw.headers.get("x-venice-balance-usd")

    assert balance_seen(customer) == (None, None)
    assert balance_seen(customer, stream=True) == (None, None)
    assert balance_seen(limited) == ("1.000000000", "1.000000000")
    spent = 5 * 10**9 - fresh_fake.ledger_sums(account_id)[0]  # two customer calls and one limited
    first_limited = spent // 3  # the three calls were identical
    seen, _ = balance_seen(limited, stream=True)
    assert seen == f"{(10**9 - first_limited) / 10**9:.9f}"  # the key's own spend, not the account's
    seen, venice = balance_seen(admin)
    balance = fresh_fake.ledger_sums(account_id)[0]
    assert seen == venice == f"{(balance + first_limited) / 10**9:.9f}"  # before the admin call
    # Past the account's money, a limited key sees no more than the account has.
    poor_account, _ = funded("0.50")
    generous = fresh_fake.new_key(poor_account, consumption_limit={"usd": "100.00", "period": "day"})
    assert balance_seen(generous) == ("0.500000000", "0.500000000")


def test_buffered_chat_is_answered_and_billed_exactly(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    raw = fresh_fake.client(key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=50, temperature=0.5, top_p=0.9, seed=7, stop=["zz"]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo: one two three four five six"
    assert reply.model == "fake-chat"
    assert raw.headers["x-request-id"].startswith("req_")
    assert "x-balance-usd" not in raw.headers  # a customer key never sees the account's balance
    assert raw.headers["x-tollway-model-id"] == "fake-chat"
    assert raw.headers["x-tollway-provider"] == "fake"
    sent = fresh_fake.fake("GET", "stats")["last_request"]
    assert sent["model"] == "gpt-4o-mini"  # the route's upstream id, not ours
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"]) == (0.5, 0.9, 7, ["zz"])
    usage = reply.usage
    assert usage is not None
    balance, reserved, ledger_sum, reserved_sum = fresh_fake.ledger_sums(account_id)
    assert balance == 5_000_000_000 - cost_nano(usage.prompt_tokens, usage.completion_tokens)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)


def test_stream_arrives_incrementally_without_usage_unless_asked(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    fresh_fake.script({"type": "slow", "delay": 0.1})
    arrivals, chunks = [], []
    for chunk in fresh_fake.client(key).chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True
    ):
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "echo: one two three four five six"
    assert all(c.usage is None for c in chunks)
    assert all(c.model == "fake-chat" for c in chunks)
    assert arrivals[-1] - arrivals[0] > 0.5, "chunks must be relayed as they come, not buffered"
    # Usage was still requested upstream, and billed: the client's choice only decides what it sees.
    assert fresh_fake.fake("GET", "stats")["last_request"]["stream_options"] == {"include_usage": True}
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert balance < 5_000_000_000 and reserved == 0 and ledger_sum == balance


def test_stream_usage_chunk_when_asked_matches_the_charge(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    stream = fresh_fake.client(key).chat.completions.create(
        model="fake-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    balance, *_ = fresh_fake.ledger_sums(account_id)
    assert balance == 5_000_000_000 - cost_nano(final.usage.prompt_tokens, final.usage.completion_tokens)


@pytest.mark.parametrize("mode", ["last_chunk_with_choices", "every_chunk"])
def test_the_last_usage_object_is_billed_never_a_sum(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]], mode: str
) -> None:
    account_id, key = funded("5.00")
    fresh_fake.script({"type": "usage", "mode": mode})
    chunks = list(
        fresh_fake.client(key).chat.completions.create(
            model="fake-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    balance, *_ = fresh_fake.ledger_sums(account_id)
    assert balance == 5_000_000_000 - cost_nano(usage.prompt_tokens, usage.completion_tokens)


def test_stream_without_any_upstream_usage_is_estimated(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    fresh_fake.script({"type": "usage", "mode": "none"})
    chunks = list(
        fresh_fake.client(key).chat.completions.create(
            model="fake-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert 5_000_000_000 - balance > 0 and reserved == 0 and ledger_sum == balance


def test_upstream_cut_mid_stream_is_an_error_not_a_short_answer(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    fresh_fake.script({"type": "cut", "after_chunks": 3})
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in fresh_fake.client(key).chat.completions.create(
            model="fake-chat", messages=MESSAGES, stream=True
        ):
            received.append(chunk)
    assert "incomplete" in str(caught.value)
    assert 1 <= len(received) <= 3
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert reserved == 0 and ledger_sum == balance  # settled on what was produced, nothing left held


def test_upstream_500_before_first_byte_charges_nothing(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    for stream in (False, True):
        fresh_fake.script({"type": "status", "status": 500})
        before = fresh_fake.fake_calls()
        with pytest.raises(openai.APIStatusError) as caught:
            result = fresh_fake.client(key).chat.completions.create(
                model="fake-chat", messages=MESSAGES, stream=stream
            )
            if stream:
                list(result)  # type: ignore[arg-type]
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "UPSTREAM_ERROR"  # type: ignore[index]
        assert fresh_fake.fake_calls() == before + 1
    assert fresh_fake.ledger_sums(account_id)[:2] == (5_000_000_000, 0)


def test_upstream_secret_never_leaks_in_errors(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("5.00")
    fresh_fake.script(
        {
            "type": "status",
            "status": 401,
            "body": {"error": {"message": "Incorrect API key provided: upstream-secret"}},
        }
    )
    response = httpx2.post(
        f"{fresh_fake.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "fake-chat", "messages": MESSAGES},
    )
    assert response.status_code == 502
    assert "upstream-secret" not in response.text
    assert "upstream-secret" not in fresh_fake.process.log_text()


def test_insufficient_balance_is_402_before_any_upstream_call(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("0.000001")  # less than the prompt and one output token at $1/$2 per 1M
    before = fresh_fake.fake_calls()
    with pytest.raises(openai.APIStatusError) as caught:
        fresh_fake.client(key).chat.completions.create(model="fake-chat", messages=MESSAGES, max_tokens=1000)
    error = caught.value.body
    assert caught.value.status_code == 402
    assert error["code"] == "INSUFFICIENT_BALANCE"  # type: ignore[index]
    assert error["available"] == "0.000001000"  # type: ignore[index]
    # It names the whole hold: 1000 output tokens at $2/1M and the prompt.
    assert int(error["required"].replace(".", "")) > 2_000_000  # type: ignore[index]
    assert fresh_fake.fake_calls() == before
    assert fresh_fake.ledger_sums(account_id)[:2] == (1_000, 0)


def test_a_max_tokens_the_balance_cannot_pay_is_clamped_to_what_it_can(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """$0.0005 pays for the prompt and about 240 output tokens at $2/1M, not 1000: the upstream is sent
    the cap the balance pays for, and the answer says it (`x-tollway-output-cap`)."""
    account_id, key = funded("0.000500")
    raw = fresh_fake.client(key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=1000
    )
    cap = int(raw.headers["x-tollway-output-cap"])
    assert 200 < cap < 250
    assert fresh_fake.fake("GET", "stats")["last_request"]["max_tokens"] == cap
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert reserved == 0 and 0 <= balance == ledger_sum < 500_000
    # A max_tokens the balance pays for is sent as asked.
    raw = fresh_fake.client(key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=MESSAGES, max_tokens=10
    )
    assert "x-tollway-output-cap" not in raw.headers
    assert fresh_fake.fake("GET", "stats")["last_request"]["max_tokens"] == 10


def test_client_disconnect_mid_stream_still_bills_the_whole_upstream_answer(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    body = {"model": "fake-chat", "messages": MESSAGES, "stream": True}
    fresh_fake.script({"type": "slow", "delay": 0.2})
    with httpx2.stream(
        "POST", f"{fresh_fake.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # one chunk, then hang up
    deadline = time.monotonic() + 15
    while fresh_fake.ledger_sums(account_id)[1] != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert reserved == 0 and ledger_sum == balance
    # The same request, read to the end, costs exactly the same: the upstream was drained and billed.
    account2, key2 = funded("5.00")
    list(fresh_fake.client(key2).chat.completions.create(model="fake-chat", messages=MESSAGES, stream=True))
    assert fresh_fake.ledger_sums(account2)[0] == balance


def test_uncensored_model_needs_tier_and_age(fresh_fake: Tollway) -> None:
    unverified = fresh_fake.new_account("1.00")
    sfw_key = fresh_fake.new_key(unverified)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        fresh_fake.client(sfw_key).chat.completions.create(model="fake-uncensored", messages=MESSAGES)
    assert caught.value.body["code"] == "CONTENT_TIER_FORBIDDEN"  # type: ignore[index]
    refused = fresh_fake.admin("POST", f"/accounts/{unverified}/keys", {"content_tier": "uncensored"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AGE_VERIFICATION_REQUIRED"
    verified = fresh_fake.new_account("1.00", age_verified=True)
    key = fresh_fake.new_key(verified, content_tier="uncensored")
    reply = fresh_fake.client(key).chat.completions.create(model="fake-uncensored", messages=MESSAGES)
    assert reply.choices[0].message.content


def test_api_v1_base_serves_the_same_routes(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    client = fresh_fake.client(key, base="/api/v1")
    assert "fake-chat" in [m.id for m in client.models.list()]
    assert client.chat.completions.create(model="fake-chat", messages=MESSAGES).choices[0].message.content


def test_tools_response_format_and_unknown_fields_pass_through(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    fresh_fake.client(key).chat.completions.create(
        model="fake-chat",
        messages=MESSAGES,
        tools=tools,
        tool_choice="auto",
        n=2,  # type: ignore[arg-type]
        response_format={"type": "json_object"},
        max_completion_tokens=20,
        extra_body={"top_k": 5},
    )
    sent = fresh_fake.fake("GET", "stats")["last_request"]
    assert (sent["tools"], sent["tool_choice"], sent["n"]) == (tools, "auto", 2)
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["max_completion_tokens"], sent["top_k"]) == (20, 5)


def test_key_consumption_limit_is_a_second_ceiling(fresh_fake: Tollway) -> None:
    account_id = fresh_fake.new_account("5.00")
    poor = fresh_fake.new_key(account_id, consumption_limit={"usd": "0.000001", "period": "day"})
    calls_before = fresh_fake.fake_calls()
    with pytest.raises(openai.APIStatusError) as caught:
        fresh_fake.client(poor).chat.completions.create(model="fake-chat", messages=MESSAGES, max_tokens=100)
    assert caught.value.status_code == 402
    assert caught.value.body["code"] == "KEY_LIMIT_EXCEEDED"  # type: ignore[index]
    assert caught.value.body["available"] == "0.000001000"  # type: ignore[index]
    assert fresh_fake.fake_calls() == calls_before
    # A key that can pay for part of max_tokens is sent the part it can pay for, and what it spent
    # counts against its limit: its next call gets a smaller cap.
    key = fresh_fake.new_key(account_id, consumption_limit={"usd": "0.000100", "period": "day"})
    caps = []
    for _ in range(2):
        raw = fresh_fake.client(key).chat.completions.with_raw_response.create(
            model="fake-chat", messages=MESSAGES, max_tokens=100
        )
        caps.append(int(raw.headers["x-tollway-output-cap"]))
        assert fresh_fake.fake("GET", "stats")["last_request"]["max_tokens"] == caps[-1]
    assert 100 > caps[0] > caps[1] > 1
    assert fresh_fake.ledger_sums(account_id)[1] == 0


@pytest.mark.parametrize("base", ["/v1", "/api/v1"])
def test_every_choice_carries_logprobs_null_when_not_asked(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]], base: str
) -> None:
    """OpenAI's answers and Venice's document both always have `choices[].logprobs`."""
    _, key = funded("1.00")
    response = httpx2.post(
        f"{fresh_fake.url}{base}/chat/completions",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "n": 2},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    choices = response.json()["choices"]
    assert choices and all("logprobs" in c and c["logprobs"] is None for c in choices)
