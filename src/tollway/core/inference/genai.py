"""A model call as an OpenTelemetry span in the GenAI semantic conventions (telemetry/tracing.py).

One CLIENT span per chat, embeddings or legacy completion call, named `{gen_ai.operation.name}
{gen_ai.request.model}` (`chat gpt-4o-mini`): it starts when the pipeline routes the call, so the
upstream attempts (`upstream <provider>`, core/inference/router.py) are its children, covers every
retry and fallback, and ends when the call is settled — a stream's at its end, with the usage its
last chunk reported. It carries the semantic conventions' request and response attributes, the
token usage the ledger charged for and what it charged (`tollway.cost_nano_usd`), and never a
prompt, an answer or a system instruction: `gen_ai.input.messages`, `gen_ai.output.messages` and
`gen_ai.system_instructions` are not on the tracing allow-list.

`gen_ai.request.model` is the model named in the request to the provider (the route's upstream
model); Tollway's own model id is `tollway.model`. `gen_ai.provider.name` is the provider's kind as a
well-known value (an `openai`-kind upstream may be any OpenAI-compatible service: the conventions'
"best knowledge"); `gen_ai.system` repeats it for backends on the conventions before 1.37.

With tracing off, `start` returns one shared `OFF` whose methods do nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.trace import Span

from tollway.core.inference.router import Served
from tollway.core.money.prices import TokenUsage
from tollway.providers.base import Provider
from tollway.telemetry import tracing

T = TypeVar("T")

OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}  # Call.endpoint →
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "local": "tollway.local",
}
FAILED_OUTCOMES = frozenset({"upstream_error", "internal_error", "shutdown"})  # a stream's, chat_stream.py


class ModelSpan:
    """What a model call's span does while tracing is off: nothing. `LiveModelSpan` does it."""

    __slots__ = ()

    def max_tokens(self, cap: int) -> None:
        return None

    async def routed(
        self,
        first: Callable[[Callable[[Provider, str], Awaitable[T]]], Awaitable[Served[T]]],
        attempt: Callable[[Provider, str], Awaitable[T]],
        kinds: Mapping[str, Any],
    ) -> Served[T]:
        """`first(attempt)`: the router's first answer. Live, the span starts here and is current
        while the routes are tried; each attempt names its provider and model on it."""
        return await first(attempt)

    def chunk(self, chunk: Mapping[str, Any]) -> None:
        return None

    async def settling(self, charge: Awaitable[int], usage: TokenUsage, source: str, outcome: str) -> int:
        """The settlement's charge; live, the span ends with it."""
        return await charge


OFF = ModelSpan()


def start(endpoint: str, model_id: str) -> ModelSpan:
    """The span of a call to `endpoint` (Call.endpoint), or OFF: tracing off, or not a model call.
    Nothing is started yet: the span begins when the call is routed (`routed`)."""
    operation = OPERATIONS.get(endpoint)
    if operation is None or not tracing.enabled():
        return OFF
    return LiveModelSpan(operation, model_id)


class LiveModelSpan(ModelSpan):
    __slots__ = ("_attributes", "_finish", "_operation", "_span")

    def __init__(self, operation: str, model_id: str) -> None:
        self._operation = operation
        self._attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "tollway.model": model_id}
        self._finish: dict[int, str] = {}  # choice index → its finish reason, as the chunks tell them
        self._span: Span | None = None

    def max_tokens(self, cap: int) -> None:
        self._attributes["gen_ai.request.max_tokens"] = cap

    async def routed(
        self,
        first: Callable[[Callable[[Provider, str], Awaitable[T]]], Awaitable[Served[T]]],
        attempt: Callable[[Provider, str], Awaitable[T]],
        kinds: Mapping[str, Any],
    ) -> Served[T]:
        span = self._span = tracing.start_span(
            f"{self._operation} {self._attributes['tollway.model']}", self._attributes, kind=tracing.CLIENT
        )
        if span is None:  # tracing was turned off since start()
            return await first(attempt)

        async def named(provider: Provider, upstream_model: str) -> T:
            config = kinds.get(provider.id)
            name = PROVIDER_NAMES.get(config.kind if config is not None else "", "openai")
            span.update_name(f"{self._operation} {upstream_model}")
            tracing.set_attributes(
                {
                    "gen_ai.provider.name": name,
                    "gen_ai.system": name,
                    "gen_ai.request.model": upstream_model,
                    "tollway.provider": provider.id,
                },
                span,
            )
            return await attempt(provider, upstream_model)

        with tracing.current(span):
            try:
                served = await first(named)
            except BaseException as exc:
                tracing.failed(span, exc)  # no route answered: the span ends with the failure's type
                span.end()
                self._span = None
                raise
        if isinstance(served.value, Mapping):
            self.chunk(served.value)  # a buffered answer (a stream's chunks come through ChatStream)
        return served

    def chunk(self, chunk: Mapping[str, Any]) -> None:
        """An answer or a stream's chunk: its id, model and finish reasons (never its content)."""
        span = self._span
        if span is None:
            return
        if isinstance(chunk.get("id"), str) and chunk["id"]:
            span.set_attribute("gen_ai.response.id", chunk["id"])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            span.set_attribute("gen_ai.response.model", chunk["model"])
        for position, choice in enumerate(chunk.get("choices") or ()):
            if isinstance(choice, Mapping) and isinstance(choice.get("finish_reason"), str):
                index = choice.get("index")
                self._finish[index if isinstance(index, int) else position] = choice["finish_reason"]

    async def settling(self, charge: Awaitable[int], usage: TokenUsage, source: str, outcome: str) -> int:
        """The call's end: the usage charged for, the charge, and a stream's outcome (completed, a
        client that left, or a failure as `error.type`; a failed settlement as `settlement_failed`)."""
        span, self._span = self._span, None
        if span is None:  # not routed (tracing turned off), or already ended
            return await charge
        attributes: dict[str, Any] = {
            "tollway.usage_source": source,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
        }
        if self._operation != "embeddings":
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if self._finish:
            attributes["gen_ai.response.finish_reasons"] = tuple(
                self._finish[i] for i in sorted(self._finish)
            )
        tracing.set_attributes(attributes, span)
        try:
            charged = await charge
        except BaseException:
            tracing.failed(span, "settlement_failed")
            span.end()
            raise
        span.set_attribute("tollway.cost_nano_usd", charged)
        if outcome in FAILED_OUTCOMES:
            tracing.failed(span, outcome)
        span.end()
        return charged
