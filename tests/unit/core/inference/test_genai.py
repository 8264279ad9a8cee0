"""core/inference/genai.py: a model call's GenAI span; nothing at all while tracing is off."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tollway.core.inference import genai
from tollway.core.inference.router import Served
from tollway.core.money.prices import TokenUsage
from tollway.errors import ErrorCode, TollwayError
from tollway.telemetry import tracing

SECRET = "words-of-a-prompt-nobody-may-see"
KINDS = {"claude": SimpleNamespace(kind="anthropic"), "gem": SimpleNamespace(kind="gemini")}
Attempt = Callable[[Any, str], Awaitable[Any]]


@pytest.fixture
def spans_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "spans.jsonl"
    tracing.configure(f"file:{path}")
    yield path
    tracing.shutdown()


def text_of(path: Path) -> str:
    return path.read_text()


def spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_off_it_is_one_shared_object_that_passes_calls_through() -> None:
    span = genai.start("chat", "m")
    assert span is genai.OFF

    async def attempt(provider: Any, model: str) -> str:
        return f"{provider.id}:{model}"

    async def first(given: Attempt) -> Served[str]:
        assert given is attempt  # not even wrapped
        return Served(SimpleNamespace(id="p"), await given(SimpleNamespace(id="p"), "u"), 1)

    served = await span.routed(first, attempt, KINDS)
    assert served.value == "p:u"

    async def charge() -> int:
        return 7

    assert await span.settling(charge(), TokenUsage(1, 2), "provider", "completed") == 7


async def test_only_model_calls_get_a_span(spans_file: Path) -> None:
    assert genai.start("moderations", "m") is genai.OFF
    assert genai.start("images", "m") is genai.OFF
    assert isinstance(genai.start("completions", "m"), genai.LiveModelSpan)


async def test_a_call_is_named_by_its_operation_and_upstream_model(spans_file: Path) -> None:
    span = genai.start("completions", "tw-model")
    span.max_tokens(16)
    body = {
        "id": "cmpl-1",
        "model": "up-1-2024",
        "choices": [
            {"index": 1, "text": SECRET, "finish_reason": "length"},
            {"index": 0, "text": SECRET, "finish_reason": "stop"},
        ],
    }

    async def attempt(provider: Any, model: str) -> dict[str, Any]:
        return body

    async def first(given: Attempt) -> Served[dict[str, Any]]:
        return Served(SimpleNamespace(id="claude"), await given(SimpleNamespace(id="claude"), "up-1"), 1)

    await span.routed(first, attempt, KINDS)

    async def charge() -> int:
        return 1234

    assert await span.settling(charge(), TokenUsage(5, 9), "provider", "completed") == 1234
    (written,) = spans(spans_file)
    assert written["name"] == "text_completion up-1"
    assert written["kind"] == "SpanKind.CLIENT"
    assert written["attributes"] == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "up-1",
        "gen_ai.request.max_tokens": 16,
        "gen_ai.response.id": "cmpl-1",
        "gen_ai.response.model": "up-1-2024",
        "gen_ai.response.finish_reasons": ["stop", "length"],  # by choice index
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 9,
        "tollway.cost_nano_usd": 1234,
        "tollway.usage_source": "provider",
        "tollway.model": "tw-model",
        "tollway.provider": "claude",
    }
    assert SECRET not in text_of(spans_file)


async def test_no_route_answering_ends_the_span_with_the_error_code(spans_file: Path) -> None:
    span = genai.start("chat", "tw")

    async def attempt(provider: Any, model: str) -> None:
        raise AssertionError("not called")

    async def first(given: Attempt) -> Served[None]:
        raise TollwayError(ErrorCode.UPSTREAM_ERROR, f"the upstream said {SECRET}")

    with pytest.raises(TollwayError):
        await span.routed(first, attempt, KINDS)

    async def charge() -> int:  # a settlement after a failure cannot end the span twice
        return 0

    assert await span.settling(charge(), TokenUsage(), "none", "completed") == 0
    (written,) = spans(spans_file)
    assert written["name"] == "chat tw"
    assert written["attributes"]["error.type"] == "UPSTREAM_ERROR"
    assert written["status"]["status_code"] == "ERROR"
    assert SECRET not in text_of(spans_file)


async def test_a_failed_settlement_and_a_cut_stream_are_errors(spans_file: Path) -> None:
    async def attempt(provider: Any, model: str) -> tuple[None, None]:
        return None, None

    async def first(given: Attempt) -> Served[tuple[None, None]]:
        return Served(SimpleNamespace(id="gem"), await given(SimpleNamespace(id="gem"), "g"), 1)

    cut = genai.start("chat", "tw")
    await cut.routed(first, attempt, KINDS)

    async def charge() -> int:
        return 10

    await cut.settling(charge(), TokenUsage(3, 1), "estimated", "upstream_error")
    broken = genai.start("embeddings", "tw")
    await broken.routed(first, attempt, KINDS)

    async def refused() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await broken.settling(refused(), TokenUsage(3), "provider", "completed")
    stream, embed = spans(spans_file)
    assert stream["attributes"]["error.type"] == "upstream_error"
    assert stream["attributes"]["gen_ai.provider.name"] == "gcp.gemini"
    assert stream["attributes"]["tollway.cost_nano_usd"] == 10
    assert embed["attributes"]["error.type"] == "settlement_failed"
    assert "gen_ai.usage.output_tokens" not in embed["attributes"]  # embeddings have no output tokens
    assert "tollway.cost_nano_usd" not in embed["attributes"]
