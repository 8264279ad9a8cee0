"""Traces from a real `tollway serve` (TOLLWAY_TRACES=file:…) driven by the official openai SDK.

The caller's W3C traceparent continues through Tollway: a SERVER span per request, a CLIENT span per
upstream attempt and the ledger's reserve/settle/release spans, all in the caller's trace. Prompts,
answers and keys never reach the span file.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.contract.servers import OPERATOR_KEY, UPSTREAM_KEY, Tollway, start_tollway
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
Span = dict[str, Any]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("tollway-traces")
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(
        tmp, fake_upstream.base_url, database_url, {"TOLLWAY_TRACES": f"file:{tmp}/spans.jsonl"}
    )
    server = Tollway(process, database_url, fake_upstream.base_url)
    server.fake("POST", "reset")
    yield server
    server.fake("POST", "reset")
    process.stop()


@pytest.fixture(scope="module")
def spans_file(traced: Tollway) -> Path:
    return Path(traced.database_url.removeprefix("sqlite:///")).parent / "spans.jsonl"  # see `traced`


def read_spans(path: Path) -> list[Span]:
    if not path.exists():
        return []
    complete = path.read_text().split("\n")[:-1]  # a line still being written has no newline yet
    return [json.loads(line) for line in complete]


def trace_of(path: Path, trace_id: str, timeout: float = 15.0) -> list[Span]:
    """The spans of one trace, once its SERVER span (the last to end) has been written."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in read_spans(path) if s["context"]["trace_id"] == f"0x{trace_id}"]
        if any(s["kind"] == "SpanKind.SERVER" for s in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def seconds(span: Span, edge: str) -> float:
    return datetime.fromisoformat(span[edge]).timestamp()


def caller_trace() -> tuple[str, str, dict[str, str]]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, {"traceparent": f"00-{trace_id}-{parent_id}-01"}


def prompt() -> str:
    return f"please keep confidential-{uuid.uuid4().hex} between us"


def assert_nothing_secret(path: Path, *secrets_: str) -> None:
    text = path.read_text()
    for secret in (*secrets_, UPSTREAM_KEY, OPERATOR_KEY, "Bearer", "authorization"):
        assert secret not in text, f"{secret!r} reached the span file"


def check_server_span(spans: list[Span], trace_id: str, parent_id: str, request_id: str, status: int) -> Span:
    server = one(spans, "POST /v1/chat/completions")
    assert server["kind"] == "SpanKind.SERVER"
    assert server["context"]["trace_id"] == f"0x{trace_id}"
    assert server["parent_id"] == f"0x{parent_id}"  # the caller's span
    attributes = server["attributes"]
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/v1/chat/completions"
    assert attributes["http.response.status_code"] == status
    assert attributes["tollway.request_id"] == request_id
    assert attributes["tollway.model"] == "fake-chat"
    assert attributes["tollway.account_id"].startswith("acct_")
    assert attributes["tollway.key_id"].startswith("key_")
    assert server["resource"]["attributes"]["service.name"] == "tollway"
    return server


def test_buffered_chat_continues_the_callers_trace(traced: Tollway, spans_file: Path) -> None:
    account_id = traced.new_account("5.00")
    key = traced.new_key(account_id)
    trace_id, parent_id, headers = caller_trace()
    text = prompt()
    raw = traced.client(key).chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=[{"role": "user", "content": text}],
        max_tokens=50,
        extra_headers=headers,
    )
    answer = raw.parse().choices[0].message.content
    assert answer is not None and text in answer  # the fake echoes: the answer holds the prompt too

    spans = trace_of(spans_file, trace_id)
    server = check_server_span(spans, trace_id, parent_id, raw.headers["x-request-id"], 200)
    assert server["attributes"]["tollway.account_id"] == account_id
    assert server["attributes"]["tollway.provider"] == "fake"
    upstream = one(spans, "upstream fake")
    assert upstream["kind"] == "SpanKind.CLIENT"
    assert upstream["attributes"] == {
        "tollway.provider": "fake",
        "tollway.upstream.model": "gpt-4o-mini",
        "tollway.upstream.attempt": 1,
        "tollway.upstream.outcome": "ok",
    }
    reserve, settle = one(spans, "ledger.reserve"), one(spans, "ledger.settle")
    model_call = one(spans, "chat gpt-4o-mini")  # the GenAI span: the attempts are its children
    assert upstream["parent_id"] == model_call["context"]["span_id"]
    for child in (model_call, reserve, settle):
        assert child["parent_id"] == server["context"]["span_id"]
    for child in (model_call, upstream, reserve, settle):
        assert child["status"]["status_code"] == "UNSET"
    assert reserve["attributes"]["tollway.amount_nano"] > settle["attributes"]["tollway.amount_nano"] > 0
    assert seconds(reserve, "end_time") <= seconds(upstream, "start_time")
    assert seconds(upstream, "end_time") <= seconds(settle, "start_time")
    # The upstream request carried the trace on, as a child of the upstream attempt's span.
    sent = traced.fake("GET", "stats")["last_request"]["_traceparent"]
    assert sent == f"00-{trace_id}-{upstream['context']['span_id'].removeprefix('0x')}-01"
    assert_nothing_secret(spans_file, text, key)


def test_streamed_chat_span_ends_with_the_stream(traced: Tollway, spans_file: Path) -> None:
    account_id = traced.new_account("5.00")
    key = traced.new_key(account_id)
    traced.script({"type": "slow", "delay": 0.2})  # ~8 chunks: the stream lasts well over a second
    trace_id, parent_id, headers = caller_trace()
    text = prompt()
    # Timed from before the request: the headers may come after the first chunks' delays.
    started = time.time()
    raw = traced.client(key).chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers=headers,
    )
    pieces = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
    finished = time.time()
    assert text in "".join(pieces)
    assert finished - started > 1.0

    spans = trace_of(spans_file, trace_id)
    server = check_server_span(spans, trace_id, parent_id, raw.headers["x-request-id"], 200)
    upstream, settle = one(spans, "upstream fake"), one(spans, "ledger.settle")
    assert upstream["parent_id"] == one(spans, "chat gpt-4o-mini")["context"]["span_id"]
    for child in (one(spans, "chat gpt-4o-mini"), one(spans, "ledger.reserve"), settle):
        assert child["parent_id"] == server["context"]["span_id"]
    # The upstream attempt ends at its first chunk; the request's span only when the stream has ended,
    # after the settlement (which comes before the last frame).
    assert seconds(upstream, "end_time") < seconds(settle, "start_time")
    assert seconds(server, "end_time") >= seconds(settle, "end_time")
    assert seconds(server, "end_time") - seconds(server, "start_time") > 1.0
    assert seconds(server, "end_time") > finished - 0.2  # when the client saw the end, not the headers
    assert_nothing_secret(spans_file, text, key)


def test_refusals_and_upstream_failures_are_traced_without_content(traced: Tollway, spans_file: Path) -> None:
    text = prompt()
    # 402: the reservation fails, no upstream is called.
    poor = traced.new_key(traced.new_account("0.000001"))
    trace_id, parent_id, headers = caller_trace()
    with pytest.raises(openai.APIStatusError) as refused:
        traced.client(poor).chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    assert refused.value.status_code == 402
    spans = trace_of(spans_file, trace_id)
    check_server_span(spans, trace_id, parent_id, refused.value.response.headers["x-request-id"], 402)
    reserve = one(spans, "ledger.reserve")
    assert reserve["attributes"]["error.type"] == "INSUFFICIENT_BALANCE"
    assert reserve["status"]["status_code"] == "ERROR"
    assert not [s for s in spans if s["kind"] == "SpanKind.CLIENT"]

    # 502: the upstream answers 503 before any byte; the hold is released.
    key = traced.new_key(traced.new_account("5.00"))
    traced.script({"type": "status", "status": 503})
    trace_id, parent_id, headers = caller_trace()
    with pytest.raises(openai.APIStatusError) as failed:
        traced.client(key).chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    assert failed.value.status_code == 502
    spans = trace_of(spans_file, trace_id)
    server = check_server_span(spans, trace_id, parent_id, failed.value.response.headers["x-request-id"], 502)
    assert server["attributes"]["error.type"] == "502"
    upstream = one(spans, "upstream fake")
    assert upstream["attributes"]["tollway.upstream.outcome"] == "error"
    assert upstream["attributes"]["http.response.status_code"] == 503
    assert upstream["attributes"]["error.type"] == "UpstreamError"
    assert one(spans, "ledger.release")["parent_id"] == server["context"]["span_id"]
    assert_nothing_secret(spans_file, text, poor, key)


# -- the GenAI semantic conventions (core/inference/genai.py) ----------------------------------------


def nano(usd: str) -> int:
    whole, _, frac = usd.partition(".")
    return int(whole) * 10**9 + int(frac.ljust(9, "0"))


def genai_span(spans: list[Span], name: str, server: Span) -> Span:
    span = one(spans, name)
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["parent_id"] == server["context"]["span_id"]
    for attempt in (s for s in spans if s["name"].startswith("upstream ")):
        assert attempt["parent_id"] == span["context"]["span_id"]  # every retry inside the model call
    return span


def test_a_chat_call_is_a_genai_span_with_usage_and_cost(traced: Tollway, spans_file: Path) -> None:
    key = traced.new_key(traced.new_account("5.00"))
    trace_id, _, headers = caller_trace()
    text = prompt()
    raw = traced.client(key).chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": text}], max_tokens=40, extra_headers=headers
    )
    answer = raw.parse()
    assert answer.usage is not None
    spans = trace_of(spans_file, trace_id)
    server = one(spans, "POST /v1/chat/completions")
    span = genai_span(spans, "chat gpt-4o-mini", server)
    assert span["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 40,
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.id": answer.id,  # the upstream's id (chatcmpl-fake-N), which Tollway passes on
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": answer.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": answer.usage.completion_tokens,
        "tollway.cost_nano_usd": nano(raw.headers["x-tollway-cost-usd"]),
        "tollway.usage_source": "provider",
        "tollway.model": "fake-chat",
        "tollway.provider": "fake",
    }
    assert answer.id.startswith("chatcmpl-fake-")
    assert (
        span["attributes"]["tollway.cost_nano_usd"]
        == one(spans, "ledger.settle")["attributes"]["tollway.amount_nano"]
    )
    assert span["status"]["status_code"] == "UNSET"
    assert_nothing_secret(spans_file, text, key)


def test_a_streamed_call_carries_the_usage_reported_at_its_end(traced: Tollway, spans_file: Path) -> None:
    key = traced.new_key(traced.new_account("5.00"))
    traced.script({"type": "slow", "delay": 0.2})
    trace_id, _, headers = caller_trace()
    text = prompt()
    chunks = list(
        traced.client(key).chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
    )
    usage = chunks[-1].usage  # only the last chunk carries it
    assert usage is not None and usage.completion_tokens > 1
    spans = trace_of(spans_file, trace_id)
    span = genai_span(spans, "chat gpt-4o-mini", one(spans, "POST /v1/chat/completions"))
    attributes = span["attributes"]
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attributes["tollway.cost_nano_usd"] == nano(f"{usage.model_extra['cost']:.9f}")
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.response.id"] == chunks[0].id
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    # It covers the whole stream, not its first chunk as the upstream attempt's span does.
    upstream = one(spans, "upstream fake")
    assert seconds(span, "end_time") - seconds(upstream, "end_time") > 1.0
    assert seconds(span, "end_time") >= seconds(one(spans, "ledger.settle"), "end_time")
    assert span["status"]["status_code"] == "UNSET"
    assert_nothing_secret(spans_file, text, key)


def test_a_stream_cut_by_the_upstream_ends_its_span_in_error(traced: Tollway, spans_file: Path) -> None:
    key = traced.new_key(traced.new_account("5.00"))
    traced.script({"type": "cut", "after_chunks": 2})
    trace_id, _, headers = caller_trace()
    with pytest.raises(openai.APIError):
        for _ in traced.client(key).chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": prompt()}],
            stream=True,
            extra_headers=headers,
        ):
            pass
    spans = trace_of(spans_file, trace_id)
    span = genai_span(spans, "chat gpt-4o-mini", one(spans, "POST /v1/chat/completions"))
    assert span["attributes"]["error.type"] == "upstream_error"
    assert span["status"]["status_code"] == "ERROR"
    assert span["attributes"]["tollway.usage_source"] == "estimated"  # billed for what was relayed
    assert span["attributes"]["tollway.cost_nano_usd"] > 0


def test_an_embeddings_call_is_a_genai_span(traced: Tollway, spans_file: Path) -> None:
    key = traced.new_key(traced.new_account("5.00"))
    trace_id, _, headers = caller_trace()
    text = prompt()
    raw = traced.client(key).embeddings.with_raw_response.create(
        model="fake-embed", input=[text, "second input"], extra_headers=headers
    )
    answer = raw.parse()
    spans = trace_of(spans_file, trace_id)
    span = genai_span(spans, "embeddings text-embedding-3-small", one(spans, "POST /v1/embeddings"))
    assert span["attributes"] == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.response.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": answer.usage.prompt_tokens,
        "tollway.cost_nano_usd": nano(raw.headers["x-tollway-cost-usd"]),
        "tollway.usage_source": "provider",
        "tollway.model": "fake-embed",
        "tollway.provider": "fake",
    }
    assert_nothing_secret(spans_file, text, key)


def test_a_failed_model_call_ends_its_span_with_the_error_type(traced: Tollway, spans_file: Path) -> None:
    key = traced.new_key(traced.new_account("5.00"))
    traced.script({"type": "status", "status": 503})
    trace_id, _, headers = caller_trace()
    text = prompt()
    with pytest.raises(openai.APIStatusError) as failed:
        traced.client(key).chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    assert failed.value.status_code == 502
    spans = trace_of(spans_file, trace_id)
    span = genai_span(spans, "chat gpt-4o-mini", one(spans, "POST /v1/chat/completions"))
    attempts = [s for s in spans if s["name"] == "upstream fake"]
    assert len(attempts) == int(failed.value.response.headers["x-tollway-attempts"]) >= 1
    assert span["attributes"]["error.type"] == "UPSTREAM_ERROR"
    assert span["status"]["status_code"] == "ERROR"
    assert span["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    charged = {"tollway.cost_nano_usd", "gen_ai.usage.input_tokens", "gen_ai.response.id"}
    assert not charged & span["attributes"].keys()  # nothing answered, nothing charged
    assert_nothing_secret(spans_file, text, key)
