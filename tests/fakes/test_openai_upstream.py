"""Tests of the fake upstream itself, through the official SDK, so Tollway's tests can trust it."""

from __future__ import annotations

import base64
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.processes import ServerProcess, free_port, start_server

# Starts a real server process (once per module), hence the project's "slow" marker.
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "upstream-secret"
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "one two three four"}
]  # reply: "echo: one two three four"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    port = free_port()
    cmd = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", str(port)]
    server = start_server(cmd, port=port, ready_path="/_fake/health", cwd=REPO_ROOT)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(upstream: ServerProcess) -> Iterator[None]:
    httpx2.post(f"{upstream.base_url}/_fake/reset", trust_env=False).raise_for_status()
    yield
    # Shown by pytest only when the test fails, next to the assertion.
    print(f"--- fake upstream log tail ---\n{upstream.log_tail()}")


@pytest.fixture
def client(upstream: ServerProcess) -> openai.OpenAI:
    # No retries: a scripted fault must surface, not be silently retried into the next behavior.
    return openai.OpenAI(base_url=f"{upstream.base_url}/v1", api_key=KEY, max_retries=0)


def script(upstream: ServerProcess, *behaviors: dict[str, Any]) -> None:
    response = httpx2.post(
        f"{upstream.base_url}/_fake/script", json={"behaviors": behaviors}, trust_env=False
    )
    response.raise_for_status()


def stats(upstream: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx2.get(f"{upstream.base_url}/_fake/stats", trust_env=False).json()
    return body


def test_buffered_chat_is_deterministic(upstream: ServerProcess, client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "be brief"}, *USER]
    answer = client.chat.completions.create(model="some-model", messages=messages)

    assert answer.model == "some-model"
    assert answer.choices[0].message.content == "echo: one two three four"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        6,
        5,
        11,
    )
    seen = stats(upstream)
    assert seen["calls"] == {"chat": 1, "embeddings": 0, "images": 0, "speech": 0}
    assert seen["last_request"]["model"] == "some-model"


def test_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="m", messages=USER, max_completion_tokens=2)

    assert answer.choices[0].message.content == "echo: one"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 2


@pytest.mark.parametrize(("limit", "expected"), [({"max_tokens": 300}, 300), ({}, 2024)])
def test_fill_writes_as_much_as_it_is_allowed(
    upstream: ServerProcess, client: openai.OpenAI, limit: dict[str, int], expected: int
) -> None:
    for stream in (False, True):
        script(upstream, {"type": "fill"})
        if not stream:
            answer = client.chat.completions.create(model="m", messages=USER, **limit)  # type: ignore[call-overload]
            assert answer.usage is not None and answer.usage.completion_tokens == expected
            assert len((answer.choices[0].message.content or "").split()) == expected
            assert answer.choices[0].finish_reason == "length"
            continue
        chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True, **limit))  # type: ignore[call-overload]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(text.split()) == expected and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == expected


def test_garbage_is_unreadable(upstream: ServerProcess, client: openai.OpenAI) -> None:
    script(upstream, {"type": "garbage", "what": "json"}, {"type": "garbage", "what": "base64"})
    response = httpx2.post(
        f"{upstream.base_url}/v1/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"authorization": f"Bearer {KEY}"},
        trust_env=False,
    )
    with pytest.raises(ValueError):
        response.json()
    image = httpx2.post(
        f"{upstream.base_url}/v1/images/generations",
        json={"model": "m", "prompt": "x"},
        headers={"authorization": f"Bearer {KEY}"},
        trust_env=False,
    )
    with pytest.raises(ValueError):
        base64.b64decode(image.json()["data"][0]["b64_json"], validate=True)
    assert base64.b64decode(client.images.generate(model="m", prompt="x").data[0].b64_json or "").startswith(
        b"\x89PNG"
    )


def test_stream_arrives_incrementally_with_usage_chunk(
    upstream: ServerProcess, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    arrivals = [(time.monotonic(), chunk) for chunk in stream]
    chunks = [chunk for _, chunk in arrivals]
    content = [c for c in chunks if c.choices]

    assert content[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in content) == "echo: one two three four"
    assert [c.choices[0].finish_reason for c in content] == [None] * 4 + ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 4 + 5
    # Five content chunks, 0.02 s apart: a buffered (non-incremental) answer would arrive at once.
    assert arrivals[-1][0] - arrivals[0][0] > 0.05
    assert stats(upstream)["last_request"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", [None] * 5),
        ("last_chunk_with_choices", [None] * 4 + [9]),
        ("every_chunk", [5, 6, 7, 8, 9]),
    ],
)
def test_usage_quirks(
    upstream: ServerProcess, client: openai.OpenAI, mode: str, expected: list[int | None]
) -> None:
    script(upstream, {"type": "usage", "mode": mode})
    stream = client.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert all(c.choices for c in chunks)  # no separate usage-only chunk in any quirk mode
    assert [c.usage.total_tokens if c.usage else None for c in chunks] == expected


def test_cut_stream_raises_connection_error(upstream: ServerProcess, client: openai.OpenAI) -> None:
    script(upstream, {"type": "cut", "after_chunks": 2})
    received = []
    # What a client really sees: the chunks sent so far, then the SDK raises APIConnectionError
    # whose __cause__ is httpx2.RemoteProtocolError ("peer closed connection without sending
    # complete message body (incomplete chunked read)"). It never ends silently.
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in client.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk)

    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert [c.choices[0].delta.content for c in received] == ["echo:", " one"]
    assert all(c.choices[0].finish_reason is None for c in received)


def test_error_event_raises_api_error(upstream: ServerProcess, client: openai.OpenAI) -> None:
    script(upstream, {"type": "error_event", "after_chunks": 1})

    with pytest.raises(openai.APIError, match="upstream exploded"):
        for _ in client.chat.completions.create(model="m", messages=USER, stream=True):
            pass


def test_scripted_statuses_are_fifo(upstream: ServerProcess, client: openai.OpenAI) -> None:
    script(upstream, {"type": "status", "status": 500}, {"type": "status", "status": 429, "retry_after": 3})

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="m", messages=USER)
    assert limited.value.response.headers["retry-after"] == "3"
    # Queue drained: back to normal answers.
    assert client.chat.completions.create(model="m", messages=USER).choices[0].finish_reason == "stop"
    assert stats(upstream)["calls"]["chat"] == 3


def test_delay_first_byte(upstream: ServerProcess, client: openai.OpenAI) -> None:
    script(upstream, {"type": "delay_first_byte", "seconds": 0.3})
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started >= 0.3


def test_wrong_key_is_rejected_and_echoed(upstream: ServerProcess) -> None:
    bad = openai.OpenAI(base_url=f"{upstream.base_url}/v1", api_key="sk-wrong-123", max_retries=0)

    with pytest.raises(openai.AuthenticationError, match="sk-wrong-123") as caught:
        bad.chat.completions.create(model="m", messages=USER)
    assert caught.value.code == "invalid_api_key"
    assert stats(upstream)["calls"]["chat"] == 0  # rejected requests neither count nor pop behaviors


def test_embeddings_encodings_agree(upstream: ServerProcess, client: openai.OpenAI) -> None:
    def raw(**extra: Any) -> dict[str, Any]:
        body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"], **extra}
        headers = {"authorization": f"Bearer {KEY}"}
        response = httpx2.post(
            f"{upstream.base_url}/v1/embeddings", json=body, headers=headers, trust_env=False
        )
        result: dict[str, Any] = response.json()
        return result

    floats = raw(encoding_format="float")
    encoded = raw(encoding_format="base64")["data"][0]["embedding"]
    vector = floats["data"][0]["embedding"]

    assert len(vector) == 8 and floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == vector
    assert raw(dimensions=4)["data"][0]["embedding"] == vector[:4]
    # The SDK asks for base64 by default and decodes it itself.
    via_sdk = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert via_sdk.data[0].embedding == vector


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "text-embedding-3-small"]


def test_start_server_reports_early_exit() -> None:
    cmd = [sys.executable, "-c", "print('boom before listening'); raise SystemExit(3)"]

    with pytest.raises(RuntimeError, match=r"(?s)code 3.*boom before listening"):
        start_server(cmd, port=free_port(), timeout=10)
