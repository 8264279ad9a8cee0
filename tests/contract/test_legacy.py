"""Legacy completions and moderations through the official openai SDK against a real server.

`fake-instruct` continues raw prompts on the fake upstream (its catalog entry lists `completions`);
`fake-chat` is chat-only there and is refused; `smollm2-135m` is the embedded model on a raw prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import openai
import pytest
import toktok

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Protocols, Tollway

pytestmark = pytest.mark.slow


def cost_nano(prompt: int, completion: int) -> int:
    return prompt * 1_000 + completion * 2_000  # fake-instruct: $1.00 in, $2.00 out per 1M tokens


@pytest.mark.parametrize("server_name", ["tollway", "tollway_pg"])
def test_buffered_completion_of_several_prompts_is_charged_exactly(
    request: pytest.FixtureRequest, server_name: str
) -> None:
    fresh_fake: Tollway = request.getfixturevalue(server_name)
    fresh_fake.fake("POST", "reset")
    account_id, key = fresh_fake.funded("5.00")
    raw = fresh_fake.client(key).completions.with_raw_response.create(
        model="fake-instruct",
        prompt=["one two", "three four five"],
        n=2,
        max_tokens=3,
        stop=["zz"],
        echo=True,
    )
    answer = raw.parse()
    assert answer.object == "text_completion" and answer.model == "fake-instruct"
    assert [c.text for c in answer.choices] == [
        "one twoecho: one two",
        "one twoecho: one two",
        "three four fiveecho: three four",
        "three four fiveecho: three four",
    ]
    sent = fresh_fake.fake("GET", "stats")["last_request"]
    assert sent["model"] == "gpt-3.5-turbo-instruct" and sent["max_tokens"] == 3 and sent["stop"] == ["zz"]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 12)
    balance, reserved, ledger_sum, reserved_sum = fresh_fake.ledger_sums(account_id)
    assert balance == 5_000_000_000 - cost_nano(5, 12)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)


def test_logprobs_come_in_the_legacy_layout(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("5.00")
    answer = fresh_fake.client(key).completions.create(model="fake-instruct", prompt="a b", logprobs=1)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens == ["echo:", " a", " b"]
    assert logprobs.token_logprobs == [-0.5, -0.5, -0.5]


def test_streamed_completion_is_relayed_and_charged_exactly(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    chunks = list(
        fresh_fake.client(key, base="/api/v1").completions.create(
            model="fake-instruct",
            prompt="one two three",
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=50,
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert all(c.model == "fake-instruct" and c.object == "text_completion" for c in chunks)
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert balance == 5_000_000_000 - cost_nano(3, 4)
    assert (reserved, ledger_sum) == (0, balance)


def test_a_chat_only_model_is_refused_not_faked_through_chat(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    with (
        untouched(
            fresh_fake,
            account_id,
            lambda: fresh_fake.fake_calls("chat") + fresh_fake.fake_calls("completions"),
        ),
        pytest.raises(openai.BadRequestError) as caught,
    ):
        fresh_fake.client(key).completions.create(model="fake-chat", prompt="hello")
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "UNSUPPORTED_CAPABILITY" and error["param"] == "model"
    assert "does not offer raw completions" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-instruct"}, "prompt"),
        ({"model": "fake-instruct", "prompt": []}, "prompt"),
        ({"model": "fake-instruct", "prompt": [1, 2]}, "prompt.0"),
        ({"model": "fake-instruct", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "fake-instruct", "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": "fake-instruct", "prompt": "x", "n": 3, "best_of": 2}, "best_of"),
        ({"model": "fake-instruct", "prompt": "x", "best_of": 2, "stream": True}, "best_of"),
        ({"model": "fake-instruct", "prompt": "x", "echo": "yes"}, "echo"),
        ({"model": "minilm-l6-v2", "prompt": "x"}, "model"),
        ({"model": "smollm2-135m", "prompt": "x", "suffix": "end"}, "suffix"),
        ({"model": "smollm2-135m", "prompt": "x", "echo": True, "logprobs": 1}, "logprobs"),
    ],
)
def test_bad_completion_requests_are_400_and_charge_nothing(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]], body: dict[str, object], param: str
) -> None:
    account_id, key = funded("5.00")
    with untouched(
        fresh_fake, account_id, lambda: fresh_fake.fake_calls("completions"), held_and_released=True
    ):
        response = httpx2.post(
            f"{fresh_fake.url}/v1/completions", json=body, headers={"authorization": f"Bearer {key}"}
        )
    assert_error(response, 400, response.json()["error"]["code"], param)


def test_the_embedded_model_continues_a_raw_prompt_and_is_charged_exactly(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    client = tollway.client(key)
    answer = client.completions.create(model="smollm2-135m", prompt=["The sky is", "Grass is"], max_tokens=4)
    assert len(answer.choices) == 2 and [c.index for c in answer.choices] == [0, 1]
    assert answer.usage is not None and answer.usage.completion_tokens <= 8
    spent = 5_000_000_000 - tollway.ledger_sums(account_id)[0]
    assert (
        spent == answer.usage.prompt_tokens * 100 + answer.usage.completion_tokens * 400
    )  # $0.10, $0.40 per 1M
    chunks = list(
        client.completions.create(
            model="smollm2-135m",
            prompt="Hello",
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens >= 1
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account_id)
    second = 5_000_000_000 - spent - balance
    assert second == usage.prompt_tokens * 100 + usage.completion_tokens * 400
    assert (reserved, ledger_sum) == (0, balance)


def test_moderation_passes_on_the_upstreams_scores_and_is_charged(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("5.00")
    answer = fresh_fake.client(key).moderations.create(
        model="fake-moderation", input=["I will kill it", "hello"]
    )
    assert [r.flagged for r in answer.results] == [True, False]
    assert answer.results[0].category_scores.violence == 0.9
    assert fresh_fake.fake("GET", "stats")["last_request"]["model"] == "omni-moderation-latest"
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    # Moderation answers carry no usage: the input is counted with the offline tokenizer (o200k_base),
    # two tokens of framing per input, at fake-moderation's $0.50 per 1M tokens.
    counted = sum(toktok.batch_count(["I will kill it", "hello"], "o200k_base", threads=1)) + 2 * 2
    assert 5_000_000_000 - balance == counted * 500
    assert (reserved, ledger_sum) == (0, balance)


def test_without_a_moderation_model_the_route_says_so(
    protocols: Protocols, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = protocols.funded("5.00")
    with untouched(protocols, account_id):
        response = httpx2.post(
            f"{protocols.url}/v1/moderations",
            json={"input": "hello"},
            headers={"authorization": f"Bearer {key}"},
        )
    assert_error(response, 404, "NOT_FOUND", "model")
    assert "no moderation model" in response.json()["error"]["message"]
