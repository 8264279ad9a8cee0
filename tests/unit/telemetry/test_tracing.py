"""telemetry/tracing.py: off costs nothing and loads no SDK; on, spans are JSON lines with ids, never content."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from tollway.errors import ErrorCode, TollwayError
from tollway.settings import Settings
from tollway.telemetry import logs, tracing
from tollway.telemetry.access import AccessLog, InFlight

REPO = Path(__file__).resolve().parents[3]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET = "the-words-of-a-prompt-nobody-may-see"


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    yield
    tracing.shutdown()


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    path = tmp_path / "spans" / "spans.jsonl"
    tracing.configure(f"file:{path}")
    return path


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def text_of(path: Path) -> str:
    return path.read_text()


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans}


@pytest.mark.slow  # starts a process
def test_off_by_default_loads_no_sdk_and_installs_nothing(tmp_path: Path) -> None:
    """In a fresh process, as `tollway serve` would be: the app, a router attempt and spans while off."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        from decimal import Decimal
        from tollway.runtime.app import create_app
        from tollway.core.catalog.catalog import CatalogModel
        from tollway.base.config import ModelConfig
        from tollway.core.inference.router import Router
        from tollway.telemetry import tracing
        from tollway.settings import Settings

        settings = Settings()
        app = create_app(settings)
        assert settings.traces == "off" and not tracing.enabled()
        assert tracing.ServerSpans not in [m.cls for m in app.user_middleware]
        first = tracing.span("ledger.reserve", {"tollway.amount_nano": 1})
        assert first is tracing.span("other", kind=tracing.CLIENT)  # one shared no-op
        with first as span:
            assert not span.is_recording()
            tracing.set_attributes({"tollway.model": "m"})

        class Up:
            id = "up"
            async def chat(self, body): return {"ok": True}

        model = CatalogModel(ModelConfig.model_validate(
            {"id": "m", "routes": [{"provider": "up", "model": "u"}], "pricing": {"input": "1"}}), Decimal(1))
        served = asyncio.run(Router({"up": Up()}).first(model, lambda p, m: p.chat({})))
        assert served.value == {"ok": True}
        # Only the trace SDK: redis-py imports opentelemetry.sdk.metrics itself whenever the SDK is installed.
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk.trace")))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLWAY_", "OTEL_"))}
    env["TOLLWAY_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_span_file_holds_one_json_object_per_span_with_allowed_attributes_only(spans_file: Path) -> None:
    with tracing.span("outer", {"tollway.model": "m", "prompt": SECRET, "tollway.key_id": None}) as outer:
        assert outer.is_recording()
        with tracing.span("inner", {"tollway.amount_nano": 42}, kind=tracing.CLIENT) as inner:
            tracing.set_attributes({"tollway.provider": "fake", "authorization": SECRET})
            tracing.set_attributes({"tollway.upstream.attempt": 2}, outer)
        assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
    tracing.shutdown()

    text = spans_file.read_text()
    assert SECRET not in text
    lines = text.splitlines()
    assert len(lines) == 2  # one line per span: inner ended first
    spans = by_name([json.loads(line) for line in lines])
    outer_span, inner_span = spans["outer"], spans["inner"]
    assert outer_span["attributes"] == {"tollway.model": "m", "tollway.upstream.attempt": 2}
    assert inner_span["attributes"] == {"tollway.amount_nano": 42, "tollway.provider": "fake"}
    assert inner_span["kind"] == "SpanKind.CLIENT"
    assert inner_span["parent_id"] == outer_span["context"]["span_id"]
    assert inner_span["context"]["trace_id"] == outer_span["context"]["trace_id"]
    assert outer_span["parent_id"] is None
    assert outer_span["resource"]["attributes"]["service.name"] == "tollway"


def test_a_failure_is_recorded_as_its_type_never_its_message(spans_file: Path) -> None:
    with pytest.raises(ValueError), tracing.span("plain"):
        raise ValueError(SECRET)
    with pytest.raises(TollwayError), tracing.span("coded"):
        raise TollwayError(ErrorCode.INSUFFICIENT_BALANCE, SECRET)
    tracing.shutdown()

    assert SECRET not in spans_file.read_text()
    spans = by_name(read_spans(spans_file))
    assert spans["plain"]["attributes"] == {"error.type": "ValueError"}
    assert spans["coded"]["attributes"] == {"error.type": "INSUFFICIENT_BALANCE"}
    for span in spans.values():
        assert span["status"] == {"status_code": "ERROR"}  # no description
        assert span["events"] == []  # no exception event (its message, its stack)


def test_otel_service_name_and_resource_attributes_are_respected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,service.name=ignored")
    path = tmp_path / "spans.jsonl"
    tracing.configure(f"file:{path}")
    with tracing.span("x"):
        pass
    tracing.shutdown()
    resource = read_spans(path)[0]["resource"]["attributes"]
    assert resource["service.name"] == "edge-gateway"  # OTEL_SERVICE_NAME wins
    assert resource["deployment.environment"] == "staging"
    assert resource["service.version"]


def test_console_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    tracing.configure("console")
    with tracing.span("to-the-terminal", {"tollway.model": "m"}):
        pass
    tracing.shutdown()
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout carries the JSON logs
    (span,) = [json.loads(line) for line in captured.err.splitlines()]
    assert span["name"] == "to-the-terminal"


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter") is not None, reason="the OTLP exporter is installed"
)
def test_otlp_without_its_exporter_stops_startup_saying_what_to_install() -> None:
    with pytest.raises(tracing.TracingUnavailable) as failure:
        tracing.configure("otlp")
    assert "pip install opentelemetry-exporter-otlp-proto-http==1.45.2" in str(failure.value)
    assert not tracing.enabled()


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="off, console, file:<path> or otlp"):
        tracing.configure("carrier-pigeon")
    with pytest.raises(ValidationError):
        Settings(traces="file:")
    assert Settings(traces="file:/var/log/tollway/spans.jsonl").traces.startswith("file:")
    tracing.configure("off")
    assert not tracing.enabled()


# -- the server span, through the real AccessLog (which collects the ids) ---------------------------

ROUTE = Route("/v1/things/{thing_id}", endpoint=lambda request: None)


def http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/things/42",
        "query_string": b"key=tw_not-a-real-key",
        "headers": headers,
        "state": {"request_id": "req_unit"},
        "route": ROUTE,  # what routing leaves in the scope
    }


async def call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def traced_app(inner: Any) -> Any:
    return AccessLog(tracing.ServerSpans(inner), InFlight())  # as runtime/app.py stacks them


async def test_traceparent_continues_the_callers_trace_and_the_span_ends_with_the_stream(
    spans_file: Path,
) -> None:
    last_chunk_ns = 0

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal last_chunk_ns
        logs.note(account_id="acct_1", key_id="key_1")  # as auth.py and the pipeline do
        logs.note(model="fake-chat", provider="fake")
        with tracing.span("ledger.reserve", {"tollway.amount_nano": 7}):
            await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await asyncio.sleep(0.3)
        last_chunk_ns = time.time_ns()
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    header = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()
    sent = await call(traced_app(streaming), http_scope([(b"traceparent", header)]))
    assert sent[0]["status"] == 200
    tracing.shutdown()

    spans = by_name(read_spans(spans_file))
    server, child = spans["POST /v1/things/{thing_id}"], spans["ledger.reserve"]
    assert server["kind"] == "SpanKind.SERVER"
    assert server["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert server["parent_id"] == f"0x{PARENT_ID}"
    assert child["parent_id"] == server["context"]["span_id"]
    assert child["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert server["attributes"] == {
        "http.request.method": "POST",
        "tollway.request_id": "req_unit",
        "http.route": "/v1/things/{thing_id}",
        "http.response.status_code": 200,
        "tollway.account_id": "acct_1",
        "tollway.key_id": "key_1",
        "tollway.model": "fake-chat",
        "tollway.provider": "fake",
    }
    ended = datetime.fromisoformat(server["end_time"]).timestamp()
    assert ended >= last_chunk_ns / 1e9 - 0.001  # after the last chunk, not the headers
    text = text_of(spans_file)
    assert "tw_not-a-real-key" not in text  # nor the query string, nor the path's "42"
    assert "/v1/things/42" not in text


async def test_without_traceparent_a_request_starts_its_own_trace(spans_file: Path) -> None:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    await call(traced_app(answer), http_scope([]))
    await call(traced_app(answer), http_scope([]))
    tracing.shutdown()
    first, second = read_spans(spans_file)
    assert first["parent_id"] is None and second["parent_id"] is None
    assert first["context"]["trace_id"] != second["context"]["trace_id"]
    assert first["status"] == {"status_code": "UNSET"}


async def test_an_unhandled_error_marks_the_server_span(spans_file: Path) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError(SECRET)

    with pytest.raises(RuntimeError):
        await call(traced_app(broken), http_scope([]))

    async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(traced_app(unavailable), http_scope([]))
    tracing.shutdown()
    crashed, refused = read_spans(spans_file)
    assert crashed["attributes"]["error.type"] == "RuntimeError"
    assert "http.response.status_code" not in crashed["attributes"]
    assert refused["attributes"]["error.type"] == "503"
    assert crashed["status"]["status_code"] == refused["status"]["status_code"] == "ERROR"
    assert SECRET not in text_of(spans_file)


async def test_off_the_middleware_passes_requests_through() -> None:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    assert not tracing.enabled()
    sent = await call(traced_app(answer), http_scope([]))
    assert sent[0]["status"] == 204
    assert tracing.outgoing_headers() == {}  # upstream requests carry no trace header when off
