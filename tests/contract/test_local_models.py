"""The embedded models really answer, through the server, with no network and no provider key."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow


def test_local_chat_knows_the_capital_of_france(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    reply = tollway.client(key).chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=30,  # no temperature, as in the README: the catalog's sampling default applies
    )
    assert "paris" in (reply.choices[0].message.content or "").lower()
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert tollway.ledger_sums(account_id)[0] < 1_000_000_000


@pytest.mark.parametrize("stream", [False, True])
def test_local_chat_without_a_limit_stops_at_the_catalogs_cap_and_is_billed_for_it(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], stream: bool
) -> None:
    # smollm2-capped: max_output_tokens 8, $0.10 in / $0.40 out per 1M (100 and 400 nano-USD a token).
    account_id, key = funded("1.00")
    ask = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
    client = tollway.client(key)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="smollm2-capped", messages=ask, stream=True, stream_options={"include_usage": True}
            )  # type: ignore[call-overload]
        )
        usage = chunks[-1].usage
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    else:
        reply = client.chat.completions.create(model="smollm2-capped", messages=ask)  # type: ignore[arg-type]
        usage, finish = reply.usage, reply.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == 8 and finish == "length"
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account_id)
    assert reserved == 0 and ledger_sum == balance
    assert 1_000_000_000 - balance == usage.prompt_tokens * 100 + 8 * 400


def test_local_chat_streams_token_by_token(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    _, key = funded("1.00")
    arrivals = []
    stream = tollway.client(key).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Write two sentences about the sea."}],
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    for chunk in stream:
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 5
    assert arrivals[-1] - arrivals[0] > 0.05
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_local_concurrent_chats_do_not_corrupt_each_other(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    import concurrent.futures

    _, key = funded("1.00")
    client = tollway.client(key)
    expected = {
        "What is the capital of France?": "paris",
        "What color is the sky on a clear day?": "blue",
        "What is 2 plus 2?": "4",
        "What animal says meow?": "cat",
    }

    def ask(question: str) -> str:
        reply = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": question}],
            max_tokens=24,
            temperature=0,
        )
        return (reply.choices[0].message.content or "").lower()

    one_by_one = [ask(q) for q in expected]
    with concurrent.futures.ThreadPoolExecutor(len(expected)) as pool:
        together = list(pool.map(ask, expected))
    assert together == one_by_one  # parallel slots share a model but never each other's state
    for answer, word in zip(together, expected.values(), strict=True):
        assert word in answer


def test_local_embeddings_rank_related_sentences_closer(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    result = tollway.client(key).embeddings.create(
        model="minilm-l6-v2",
        input=["How do I reset my API key?", "Steps to regenerate an API token", "Banana bread recipe"],
    )
    a, b, c = (d.embedding for d in result.data)
    assert len(a) == 384
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, a) == pytest.approx(1.0, abs=1e-3)
    assert dot(a, b) > dot(a, c) + 0.3
