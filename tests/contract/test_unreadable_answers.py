"""An upstream answer that cannot be read (not JSON, JSON in the wrong shape, broken base64, bytes that
are no image) is a 502 `UPSTREAM_ERROR` that says what the upstream sent, never a 500 or a 400, on every
upstream dialect; it costs nothing, or, once a stream has started, the stream ends in its error frame
and is billed as far as it went (README, "How a call is handled").

The fakes' `garbage` behaviour makes the bad answers (tests/fakes/openai_upstream.py). A buffered
answer that cannot be read is retried like any failed attempt (the `protocols` server makes three:
tests/contract/servers.py PROTOCOL_ENV), so each case scripts three, on a model of its own."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest

from tests.contract.servers import Protocols

pytestmark = pytest.mark.slow
KINDS = ["openai", "anthropic", "gemini"]
HELLO = [{"role": "user", "content": "one two three four five six"}]
CREDIT = 5_000_000_000


def post(server: Protocols, key: str, path: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{server.url}/v1/{path}", headers={"authorization": f"Bearer {key}"}, json=body, timeout=30
    )


def assert_free_502(server: Protocols, account: str, response: httpx2.Response, attempts: int) -> str:
    """A 502 UPSTREAM_ERROR with the request id, after `attempts` attempts, that charged nothing."""
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "UPSTREAM_ERROR" and error["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-tollway-attempts"] == str(attempts)
    assert server.ledger_sums(account) == (CREDIT, 0, CREDIT, 0)
    return str(error["message"])


@pytest.mark.parametrize("what", ["json", "shape"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_buffered_chat_answer_is_a_free_502(
    fresh_protocols: Protocols, kind: str, what: str
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, *[{"type": "garbage", "what": what}] * 3)
    body = {"model": f"garbage-{what}-{kind}", "messages": HELLO}
    message = assert_free_502(
        fresh_protocols, account, post(fresh_protocols, key, "chat/completions", body), 3
    )
    expected = "sent invalid JSON" if what == "json" else "sent a"
    assert expected in message and "Safe to retry" in message


@pytest.mark.parametrize("what", ["json", "shape"])
@pytest.mark.parametrize("kind", ["openai", "gemini"])  # an Anthropic stream starts with message_start
def test_a_stream_whose_first_event_is_unreadable_is_a_free_502(
    fresh_protocols: Protocols, kind: str, what: str
) -> None:
    account, key = fresh_protocols.funded()
    model = f"garbage-first-{kind}"
    fresh_protocols.script_on(kind, {"type": "garbage", "what": what, "after_chunks": 0})
    body = {"model": model, "messages": HELLO, "stream": True}
    message = assert_free_502(
        fresh_protocols, account, post(fresh_protocols, key, "chat/completions", body), 1
    )
    assert "sent a" in message  # "a malformed stream event", "a stream chunk in an unexpected shape", ...


@pytest.mark.parametrize("what", ["json", "shape"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_event_mid_stream_ends_it_in_the_error_frame_billed_as_far_as_it_went(
    fresh_protocols: Protocols, kind: str, what: str
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "garbage", "what": what, "after_chunks": 2})
    body = {"model": f"garbage-mid-{kind}", "messages": HELLO, "stream": True}
    response = post(fresh_protocols, key, "chat/completions", body)
    assert response.status_code == 200, response.text
    events = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert "[DONE]" not in response.text
    text = "".join(c["delta"].get("content") or "" for e in events[:-1] for c in e.get("choices") or ())
    assert text.startswith("echo:")  # what came before the bad event reached the client
    error = events[-1]["error"]
    assert error["code"] == "UPSTREAM_ERROR" and error["request_id"] == response.headers["x-request-id"]
    assert "incomplete" in error["message"]
    balance, reserved, ledger_sum, reserved_sum = fresh_protocols.ledger_sums(account)
    assert (reserved, reserved_sum, ledger_sum) == (0, 0, balance)
    assert 0 < CREDIT - balance < 100_000  # the relayed part, not the hold of 1,000 output tokens


@pytest.mark.parametrize(("what", "encoding"), [("json", "float"), ("shape", "base64"), ("base64", "base64")])
def test_unreadable_embeddings_are_a_free_502(fresh_protocols: Protocols, what: str, encoding: str) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", *[{"type": "garbage", "what": what}] * 3)
    body = {"model": f"embed-garbage-{what}", "input": ["a b", "c d"], "encoding_format": encoding}
    message = assert_free_502(fresh_protocols, account, post(fresh_protocols, key, "embeddings", body), 3)
    expected = {"json": "invalid JSON", "shape": "not a list of numbers", "base64": "not valid base64"}[what]
    assert expected in message


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("json", "sent invalid JSON"),
        ("shape", "returned no images"),
        ("base64", "sent an image that is not valid base64"),
        ("image", "sent an image that is not a readable PNG, JPEG or WebP"),
    ],
)
def test_unreadable_images_are_a_free_502(fresh_protocols: Protocols, what: str, expected: str) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", *[{"type": "garbage", "what": what}] * 3)
    body = {"model": f"image-garbage-{what}", "prompt": "a red square", "size": "1024x1024"}
    message = assert_free_502(
        fresh_protocols, account, post(fresh_protocols, key, "images/generations", body), 3
    )
    assert expected in message


def test_a_readable_image_and_embedding_still_pass(fresh_protocols: Protocols) -> None:
    account, key = fresh_protocols.funded()
    image = post(fresh_protocols, key, "images/generations", {"model": "image-ok", "prompt": "x"})
    assert image.status_code == 200, image.text
    assert image.json()["data"][0]["b64_json"]
    embedding = post(
        fresh_protocols, key, "embeddings", {"model": "embed-ok", "input": "a b", "encoding_format": "base64"}
    )
    assert embedding.status_code == 200, embedding.text
    assert isinstance(embedding.json()["data"][0]["embedding"], str)
    balance, reserved, ledger_sum, _ = fresh_protocols.ledger_sums(account)
    assert reserved == 0 and ledger_sum == balance < CREDIT
