"""Optional OpenTelemetry traces (`TOLLWAY_TRACES`), off by default.

Off (the default), the SDK is never imported, no middleware is installed, and `span()` hands every
caller one shared do-nothing context manager: the request path pays a call and a None check.

On, `console` writes each span as one JSON line to stderr (stdout carries the JSON logs),
`file:<path>` appends the same lines to a file (offline, what the tests read), and `otlp` sends
batches with opentelemetry-exporter-otlp-proto-http, configured by the standard `OTEL_EXPORTER_OTLP_*`
variables. `OTEL_SERVICE_NAME` (default "tollway"), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
and `OTEL_PROPAGATORS` work as they do elsewhere.

Spans come from Tollway's own tracer provider, which is deliberately not made the global one: other
libraries' instrumentation stays off (FastAPI's native request spans record the query string, where
Gemini clients put `?key=`; GenAI instrumentations record prompts). Context is the standard
OpenTelemetry context, so a caller's W3C `traceparent` continues through Tollway. No span ever
carries content, a key or a header: attributes pass the `ATTRIBUTES` allow-list, and a failure is
recorded as its type, never its message.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode, Tracer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway import __version__
from tollway.errors import TollwayError
from tollway.telemetry import access, logs

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL

# The only attribute names a span may carry; others are dropped, like logs.FIELDS for log lines.
# Identifiers, amounts and outcomes only: never a prompt, an answer, media, a key or a header.
ATTRIBUTES = frozenset(
    {
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "error.type",
        "tollway.request_id",
        "tollway.account_id",
        "tollway.key_id",
        "tollway.model",
        "tollway.provider",
        "tollway.upstream.model",
        "tollway.upstream.attempt",
        "tollway.upstream.outcome",
        "tollway.amount_nano",
        # A model call (core/inference/genai.py), OpenTelemetry's GenAI semantic conventions; never
        # gen_ai.input.messages, gen_ai.output.messages or gen_ai.system_instructions (content).
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.system",  # gen_ai.provider.name's name before semconv 1.37, for older backends
        "gen_ai.request.model",
        "gen_ai.request.max_tokens",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "tollway.cost_nano_usd",
        "tollway.usage_source",
    }
)
Attributes = Mapping[str, str | int | float | bool | tuple[str, ...] | None]


class TracingUnavailable(SystemExit):
    """TOLLWAY_TRACES asks for a package that is not installed. A SystemExit, so that `tollway serve`
    stops at startup with this one line (what to install) rather than a traceback."""


class _NoSpan:
    """What `span()` returns while tracing is off: one shared instance, entering it does nothing."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN  # accepts set_attribute() and friends, records nothing

    def __exit__(self, *exc_info: object) -> None:
        return None


class _LiveSpan:
    """A started span made current for the `with` block, and ended (with its error, if any) after it."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._token)
        if exc is not None:
            _failed(self._span, exc)
        self._span.end()


_OFF = _NoSpan()
_tracer: Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None
_out: IO[str] | None = None  # the span file of file:<path>


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Attributes | None = None, *, kind: SpanKind = INTERNAL
) -> _NoSpan | _LiveSpan:
    """`with tracing.span("ledger.reserve", {...}) as s:` a child of the current span, made current."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    return _LiveSpan(
        tracer.start_span(
            name,
            kind=kind,
            attributes=_clean(attributes),
            record_exception=False,
            set_status_on_exception=False,
        )
    )


def start_span(name: str, attributes: Attributes | None = None, *, kind: SpanKind = INTERNAL) -> Span | None:
    """A started span, a child of the current one, that the caller ends (`span.end()`) when it likes:
    for an operation that outlives a `with` block (a stream); None while tracing is off."""
    tracer = _tracer
    if tracer is None:
        return None
    return tracer.start_span(
        name, kind=kind, attributes=_clean(attributes), record_exception=False, set_status_on_exception=False
    )


class current:
    """`with tracing.current(span):` makes a span from `start_span` the parent of the spans opened
    in the block, without ending it."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)


def failed(span: Span, exc: BaseException | str) -> None:
    """Mark `span` failed: `error.type` is an exception's type (Tollway's error code), or the string."""
    if isinstance(exc, str):
        span.set_attribute("error.type", exc)
        span.set_status(StatusCode.ERROR)
    else:
        _failed(span, exc)


def outgoing_headers() -> dict[str, str]:
    """The current span's propagation headers (W3C `traceparent`, or what OTEL_PROPAGATORS names) for
    an upstream request, so an upstream that traces continues our trace; empty when tracing is off."""
    if _tracer is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def set_attributes(attributes: Attributes, on: Span | None = None) -> None:
    """Add allow-listed attributes to `on`, or to the current span."""
    if _tracer is None:
        return
    (on or trace.get_current_span()).set_attributes(_clean(attributes))


def _clean(attributes: Attributes | None) -> dict[str, str | int | float | bool | tuple[str, ...]]:
    if not attributes:
        return {}
    return {k: v for k, v in attributes.items() if v is not None and k in ATTRIBUTES}


def _failed(span: Span, exc: BaseException) -> None:
    # The type (or Tollway's error code), never str(exc): a message may quote what a caller sent.
    kind = exc.code.name if isinstance(exc, TollwayError) else type(exc).__qualname__
    span.set_attribute("error.type", kind)
    span.set_status(StatusCode.ERROR)


# -- configuration ---------------------------------------------------------------------------------


def configure(spec: str) -> None:
    """Turn tracing on or off from TOLLWAY_TRACES: `off`, `console`, `file:<path>` or `otlp`.

    Raises TracingUnavailable when a needed package is missing, ValueError for another value."""
    global _tracer, _provider, _out
    shutdown()
    spec = spec.strip()
    mode, _, target = spec.partition(":")
    if spec in ("", "off"):
        return
    if mode not in ("console", "file", "otlp") or (mode == "file") != bool(target.strip()):
        raise ValueError(f"TOLLWAY_TRACES={spec!r}: use off, console, file:<path> or otlp")
    api = _api_version()
    try:  # only here: with tracing off, nothing below is ever imported
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
        from opentelemetry.sdk.trace import TracerProvider as SdkProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        raise TracingUnavailable(
            f"TOLLWAY_TRACES={spec} needs the OpenTelemetry SDK: "
            f"pip install opentelemetry-sdk=={api} (the tollway[otel] extra)"
        ) from None

    def one_line(span: ReadableSpan) -> str:
        return str(span.to_json(indent=None)) + "\n"

    processor: SpanProcessor
    if mode == "otlp":
        try:
            module: Any = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError:
            raise TracingUnavailable(
                "TOLLWAY_TRACES=otlp needs the OTLP exporter: "
                f"pip install opentelemetry-exporter-otlp-proto-http=={api}"
            ) from None
        # Batched on the SDK's thread, off the event loop; endpoint, headers and timeout come from
        # OTEL_EXPORTER_OTLP_*; the queue is flushed by shutdown().
        processor = BatchSpanProcessor(module.OTLPSpanExporter())
    else:
        # Written as each span ends: these are for a terminal or a test, and nothing is lost at exit.
        out: IO[str] = sys.stderr
        if mode == "file":
            path = Path(target.strip())
            path.parent.mkdir(parents=True, exist_ok=True)
            out = _out = path.open("a", encoding="utf-8")
        processor = SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=one_line))
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over Tollway's defaults, which fill the gaps.
    operator_set = OTELResourceDetector().detect().attributes
    defaults = {"service.name": "tollway", "service.version": __version__}
    provider = SdkProvider(
        resource=Resource.create({k: v for k, v in defaults.items() if k not in operator_set})
    )
    provider.add_span_processor(processor)
    _provider = provider
    _tracer = provider.get_tracer("tollway", __version__)


def _api_version() -> str:
    try:
        return version("opentelemetry-api")  # the SDK and exporter must match it exactly
    except PackageNotFoundError:  # pragma: no cover - fastapi depends on it
        return "<your opentelemetry-api version>"


def shutdown() -> None:
    """Flush what is queued (otlp), close the span file, and turn tracing off."""
    global _tracer, _provider, _out
    provider, out = _provider, _out
    _tracer = _provider = _out = None
    if provider is not None:
        provider.shutdown()
    if out is not None:
        out.close()


# -- the server span -------------------------------------------------------------------------------


class ServerSpans:
    """Pure ASGI middleware: one SERVER span per HTTP request, the parent of everything under it.

    The span ends when the last byte of the response is sent (a stream's end, not its headers).
    runtime/app.py installs it inside AccessLog and only while tracing is on; the request, account, key,
    model and provider ids are the ones the access log collects (telemetry/logs.py), read at the end.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        parent = propagate.extract(Headers(scope=scope))  # traceparent (OTEL_PROPAGATORS); no header: a root
        request_id = (scope.get("state") or {}).get("request_id")  # set by RequestContext, outside us
        server = tracer.start_span(
            method,
            parent,
            kind=SERVER,
            attributes=_clean({"http.request.method": method, "tollway.request_id": request_id}),
            record_exception=False,
            set_status_on_exception=False,
        )
        status = 0

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(server, parent))
        error: BaseException | None = None
        try:
            await self.app(scope, receive, observe)
        except BaseException as exc:
            error = exc
            raise
        finally:
            otel_context.detach(token)
            # AccessLog's dict for this request (telemetry/logs.py), filled by logs.note() as it moved on.
            info: Mapping[str, Any] = logs.current()
            route = access.route_template(scope)
            if route != access.UNMATCHED:
                server.update_name(f"{method} {route}")  # the template, never the path
            server.set_attributes(
                _clean(
                    {
                        "http.route": None if route == access.UNMATCHED else route,
                        "http.response.status_code": status or None,
                        "tollway.account_id": info.get("account_id"),
                        "tollway.key_id": info.get("key_id"),
                        "tollway.model": info.get("model"),
                        "tollway.provider": info.get("provider"),
                    }
                )
            )
            if error is not None:
                _failed(server, error)
            elif status >= 500 or status == 0:
                server.set_attribute("error.type", str(status) if status else "incomplete_response")
                server.set_status(StatusCode.ERROR)
            server.end()
