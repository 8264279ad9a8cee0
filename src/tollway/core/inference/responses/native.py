"""A Responses request passed through to an upstream that speaks it natively, on the one charge path.

Used when every route of the model is an upstream whose catalog entry lists `protocols: [responses]`
(providers/openai/responses.py); a model with any other route is translated to chat instead
(api/responses.py). The money is chat's: the hold covers the prompt (counted on the request's chat
translation, the tokenizer that sizes every hold) and the output cap at the dearer output price,
shrunk to what the balance pays for (the upstream is sent that cap as `max_output_tokens`); the
settlement is the upstream's own `usage` (input, cached, output, reasoning tokens), or, when the
upstream reports none, an estimate from the text it produced — never $0. The upstream is always sent
`store: false`: storage is Tollway's own (stored.py), never a third party's.

A stream is relayed and metered by the chat relay (core/inference/chat_stream.py: its own task,
client-disconnect drain, settle-before-last-frame): `NativeStream` renumbers `sequence_number`, names
the catalog model, and holds the terminal event back until the charge is known so it carries
`usage.cost`. An upstream failure mid-stream is an `error` event then `response.failed`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import orjson

from tollway.base import tokens
from tollway.core.access import policy
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.inference import holds
from tollway.core.inference.chat_plan import DEFAULT_OUTPUT_CAP
from tollway.core.inference.chat_stream import END, ChatStream
from tollway.core.inference.pipeline import Admitted, Call, Pipeline, Result, charged_headers
from tollway.core.money.prices import TokenUsage, cost_number
from tollway.dialects.responses.shapes import new_id
from tollway.errors import ErrorCode, TollwayError
from tollway.providers import registry
from tollway.providers.base import Provider, UpstreamError

log = logging.getLogger("tollway.pipeline")
JSON = dict[str, Any]
Keep = Callable[[JSON], Awaitable[None]]
PROTOCOL = "responses"
TERMINAL = frozenset({"response.completed", "response.incomplete"})
# Tollway's own fields: continuation is resolved here (api/responses.py), never by the upstream.
NOT_FORWARDED = ("previous_response_id", "stream", "background", "conversation")


def offered(catalog: Catalog, model: CatalogModel, protocol: str = PROTOCOL) -> bool:
    """Whether every route of `model` is an upstream that serves `protocol` natively (its catalog
    entry's `protocols`: responses, image_variations, audio_translations)."""
    providers = [catalog.providers[route.provider] for route in model.config.routes]
    return all(registry.capabilities(p.kind).native_protocols and protocol in p.protocols for p in providers)


def native_model(catalog: Catalog, name: str) -> CatalogModel | None:
    """The model `name` names when it is passed through natively; None for the translated path (which
    also resolves what only chat knows, e.g. a Venice `model:param` suffix, and refuses the unknown)."""
    try:
        model = model_names.resolve(catalog, name, "text")
    except TollwayError:
        return None
    return model if offered(catalog, model) else None


def usage_of(raw: Any) -> TokenUsage | None:
    """A Responses `usage` as TokenUsage; None when missing or malformed (then the text is counted)."""
    if not isinstance(raw, dict):
        return None
    if not isinstance(raw.get("input_tokens"), int) or not isinstance(raw.get("output_tokens"), int):
        return None
    details_in = raw.get("input_tokens_details")
    details_out = raw.get("output_tokens_details")
    return TokenUsage(
        prompt_tokens=raw["input_tokens"],
        completion_tokens=raw["output_tokens"],
        cached_tokens=int(details_in.get("cached_tokens") or 0) if isinstance(details_in, dict) else 0,
        reasoning_tokens=int(details_out.get("reasoning_tokens") or 0)
        if isinstance(details_out, dict)
        else 0,
    )


def usage_out(usage: TokenUsage, charged: int | None) -> JSON:
    """What the answer says it used, and (when settled) what it cost: the ledger's figure."""
    out: JSON = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if charged is not None:
        out["cost"] = cost_number(charged)
    return out


def output_texts(output: Any) -> list[str]:
    """What a Response's output items generated: text, reasoning, call arguments (for an estimate)."""
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
        for part in [*(item.get("content") or ()), *(item.get("summary") or ())]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


def _not_offered(provider: Provider) -> UpstreamError:
    return UpstreamError(f"provider {provider.id!r} does not serve /responses", retryable=False, kind="route")


async def respond(
    pipeline: Pipeline, call: Call, body: JSON, chat: JSON, model: CatalogModel, keep: Keep
) -> Result:
    """`body` is the checked Responses request (continuation and item references resolved); `chat` its
    chat translation, for the content policy and the prompt count. `keep` stores the finished Response."""
    model, deprecation = model_names.deprecation(pipeline.catalog, model)
    await policy.enforce(pipeline.catalog, call.caller, chat, model)  # 422 before any charge
    assert model.token_prices is not None
    prompt = tokens.count_prompt(chat)
    ceiling = model.config.max_output_tokens or DEFAULT_OUTPUT_CAP
    cap = min(ceiling, int(body.get("max_output_tokens") or ceiling))
    hold_for = partial(holds.chat_hold, model.token_prices, prompt, 1)
    admitted = await pipeline.admit(call, model, hold_for(cap), prompt + cap, least_nano=hold_for(1))
    admitted.headers.update(deprecation)
    if admitted.hold.held_nano < hold_for(cap):
        cap = holds.affordable_cap(hold_for, admitted.hold.held_nano, cap)
        admitted.headers["x-tollway-output-cap"] = str(cap)
    admitted.trace.max_tokens(cap)
    upstream = {k: v for k, v in body.items() if k not in NOT_FORWARDED}
    upstream.update(max_output_tokens=cap, store=False)
    async with admitted.hold:  # a failure before the first byte releases it
        if body.get("stream"):
            return await _stream(pipeline, call, admitted, upstream, prompt, keep, body.get("store") is True)
        return await _buffered(pipeline, admitted, upstream, prompt, keep)


async def _buffered(pipeline: Pipeline, admitted: Admitted, body: JSON, prompt: int, keep: Keep) -> Result:
    async def attempt(provider: Provider, upstream_model: str) -> JSON:
        if PROTOCOL not in getattr(provider, "protocols", ()):
            raise _not_offered(provider)
        answer: JSON = await cast(Any, provider).respond({**body, "model": upstream_model})
        return answer

    provider, answer = await pipeline.first_route(admitted.model, attempt, admitted.headers, admitted.trace)
    usage, source = usage_of(answer.get("usage")), "provider"
    if usage is None:
        usage, source = TokenUsage(prompt, tokens.count(output_texts(answer.get("output")))), "estimated"
    answer["model"] = admitted.model.id
    answer["id"] = new_id("resp")  # Tollway's own: what storage keys it by, and no upstream's handle
    charged = await pipeline.settle(admitted, provider.id, usage, source, "completed")
    answer["usage"] = usage_out(usage, charged)
    await keep(answer)  # after the charge: a failure here is a 500, the answer paid for is lost
    return Result(headers=charged_headers(admitted.headers, charged), body=answer)


async def _stream(
    pipeline: Pipeline, call: Call, admitted: Admitted, body: JSON, prompt: int, keep: Keep, stored: bool
) -> Result:
    def start(provider: Provider, upstream_model: str) -> Any:
        if PROTOCOL not in getattr(provider, "protocols", ()):
            raise _not_offered(provider)
        return cast(Any, provider).respond_stream({**body, "model": upstream_model})

    first, upstream, settle = await pipeline.open_stream(admitted, start)
    stream = NativeStream(
        request_id=call.request_id,
        model_id=admitted.model.id,
        first=first,
        upstream=upstream,
        settle=settle,
        prompt_estimate=prompt,
        wants_usage=True,
        drain_seconds=pipeline.drain_seconds,
        trace=admitted.trace,
    )
    stream.keep, stream.stored = keep, stored
    return Result(headers=admitted.headers, frames=pipeline.relay(stream))


def frame(kind: str, data: JSON) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class NativeStream(ChatStream):
    """The chat relay (its task, drain and settlement) carrying a native Responses event stream."""

    keep: Keep | None = None
    stored = False  # whether Tollway keeps the response (the upstream is always sent store: false)
    _sequence = 0
    _terminal: JSON | None = None
    _response: JSON | None = None  # the latest Response the upstream described
    _id = ""  # Tollway's own id for the Response (as a buffered answer's)

    async def _event(self, data: JSON) -> None:
        data["sequence_number"] = self._sequence
        self._sequence += 1
        await self._emit(frame(str(data.get("type")), data))

    async def _relay(self, chunk: JSON) -> None:
        kind = chunk.get("type")
        response = chunk.get("response")
        if isinstance(response, dict):
            self._id = self._id or new_id("resp")
            response.update(model=self._model_id, id=self._id, store=self.stored)
            self._response = response
        if kind in TERMINAL:
            self._last_usage = usage_of(response.get("usage") if isinstance(response, dict) else None)
            self._terminal = chunk  # sent once the charge is known, with `usage.cost`
            return
        if isinstance(kind, str) and kind.endswith(".delta") and isinstance(chunk.get("delta"), str):
            self._produced.append(chunk["delta"])
        await self._event(chunk)

    async def _finish(
        self, failure: ErrorCode | None, outcome: str, usage: TokenUsage, charged: int | None
    ) -> None:
        response: JSON = copy.deepcopy(self._response) if self._response is not None else {}
        if failure is not None:
            code = "server_error"
            message = "The upstream failed mid-stream; the answer is incomplete."
            await self._event({"type": "error", "code": code, "message": message, "param": None})
            response.update(status="failed", error={"code": code, "message": message})
            response["usage"] = usage_out(usage, charged)
            await self._event({"type": "response.failed", "response": response})
        elif outcome == "completed" and self._terminal is not None:
            final = self._terminal
            final["response"]["usage"] = usage_out(usage, charged)
            if self.keep is not None:
                try:
                    await self.keep(final["response"])
                except Exception:  # the answer was paid for: the client still gets it
                    log.exception("storing a streamed response failed")
            await self._event(final)
        await self._emit(END)
