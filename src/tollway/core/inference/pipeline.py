"""The request pipeline shared by every inference route (DESIGN §3).

admission (policy, estimate, reservation) → route → relay while metering → settle.
Nothing here knows HTTP: adapters pass a validated body in and render what comes out.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection

from tollway.base import tokens
from tollway.base.clock import utcnow
from tollway.core import admission
from tollway.core.access import policy
from tollway.core.admission import Hold
from tollway.core.caller import Caller
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.inference import chat_plan, genai, holds
from tollway.core.inference.chat_stream import ChatStream, Settle, cut_attended, generated_texts
from tollway.core.inference.router import Router, timed
from tollway.core.inference.schemas import ChatRequest, EmbeddingsRequest, validate
from tollway.core.inference.search import SearchProvider
from tollway.core.limits.gate import RateGate
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import (
    COST_HEADER,
    TokenUsage,
    batch_price,
    cost_number,
    nano_to_usd,
    token_cost,
    usage_dict,
    usage_of,
)
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import Provider
from tollway.telemetry import logs

log = logging.getLogger("tollway.pipeline")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchLine:
    """A batch's line run as a live call (core/batches/): priced at the model's batch discount, held
    in full (no output cap shrunk to the balance), its answer kept (`keep`) before the settlement,
    whose transaction runs `record` (the line's row: its unique key meters the line once)."""

    keep: Callable[[dict[str, Any]], Awaitable[None]]
    record: Callable[[Connection], None]


@dataclass(slots=True)
class Call:
    """One inference request as it moves through the pipeline."""

    request_id: str
    caller: Caller
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    batch: BatchLine | None = None


@dataclass(slots=True)
class Result:
    """What an adapter renders: a JSON body, or SSE frames, plus headers for the client."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    frames: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class Admitted:
    """A request that passed admission: its model, its hold (core/admission.py), the headers known so far."""

    model: CatalogModel
    hold: Hold
    headers: dict[str, str]
    venice: chat_plan.ChatPlan | None = None  # chat's Venice extensions (core/inference/chat_plan.py)
    batch: BatchLine | None = None
    trace: genai.ModelSpan = genai.OFF  # the call's GenAI span (core/inference/genai.py)


class Pipeline:
    def __init__(
        self,
        catalog: Catalog,
        ledger: Ledger,
        router: Router,
        *,
        drain_seconds: float,
        rate_gate: RateGate | None = None,
    ) -> None:
        self.catalog = catalog
        self.rate_gate = rate_gate
        self.ledger = ledger
        self.router = router
        self._drain_seconds = drain_seconds
        self._background: set[asyncio.Task[None]] = set()
        self.search: SearchProvider | None = None  # web search for chat (core/inference/search.py)

    # -- admission ----------------------------------------------------------------------------

    def _resolve(self, name: str, model_type: str) -> CatalogModel:
        return model_names.resolve(self.catalog, name, model_type)  # id, alias, trait, compatibility

    async def admit(
        self,
        call: Call,
        model: CatalogModel,
        estimate_nano: int,
        estimate_tokens: int = 0,
        least_nano: int | None = None,
    ) -> Admitted:
        """Admission (core/admission.py: tier, rate limits, the hold; 402 before any upstream call)
        and the headers every answer carries. The media routes use it too. With `least_nano` the
        hold may shrink down to it (`hold.held_nano` is what was held); a batch line's never does."""
        if call.batch is not None:
            least_nano = None
        began = utcnow() - timedelta(seconds=time.perf_counter() - call.started)
        caller = call.caller
        if caller.account_id is not None:  # the access log and the trace name them, refused or not
            logs.note(model=model.id, account_id=caller.account_id, key_id=caller.key_id)
        hold = await admission.admit(
            self.ledger,
            # A batch line is not a live call: like the providers' batch queues, it is paced by the
            # batch runner (TOLLWAY_BATCH_CONCURRENCY), not the key's per-minute limits; money still binds it.
            self.rate_gate if call.batch is None else None,
            caller,
            request_id=call.request_id,
            model=model,
            endpoint=call.endpoint,
            estimate_nano=estimate_nano,
            estimate_tokens=estimate_tokens,
            began=began,
            least_nano=least_nano,
            settle_also=call.batch.record if call.batch is not None else None,
        )
        headers = {
            "x-tollway-model-id": model.id,
            "x-venice-model-id": model.id,
            "x-tollway-model-name": model.config.name or model.id,
            "x-venice-model-name": model.config.name or model.id,
            "x-tollway-timestamp": utcnow().isoformat(timespec="milliseconds"),
            "x-venice-timestamp": utcnow().isoformat(timespec="milliseconds"),
            **hold.rate.headers,  # computed at admission, so streams carry them from the first byte
        }
        if hold.balance_before_nano is not None:  # only what this key may see (admission.shown_balance)
            balance = nano_to_usd(hold.balance_before_nano)
            headers["x-balance-usd"] = headers["x-venice-balance-usd"] = balance
        return Admitted(model, hold, headers, batch=call.batch, trace=genai.start(call.endpoint, model.id))

    async def settle(
        self,
        admitted: Admitted,
        provider: str,
        usage: TokenUsage,
        source: str,
        outcome: str,
        status: int = 200,
    ) -> int:
        """Charge the tokens used at the model's prices, free the rest of the hold; returns the charge."""
        assert admitted.model.token_prices is not None
        cost = token_cost(admitted.model.token_prices, usage)
        if admitted.batch is not None:
            cost = batch_price(cost, admitted.model.config.pricing.batch_discount)
        charge = admitted.hold.settle(
            cost, provider=provider, usage=usage, source=source, outcome=outcome, status=status
        )
        return await admitted.trace.settling(charge, usage, source, outcome)  # the call's span ends

    async def first_route(
        self,
        model: CatalogModel,
        attempt: Callable[[Provider, str], Awaitable[T]],
        headers: dict[str, str] | None = None,
        trace: genai.ModelSpan = genai.OFF,
    ) -> tuple[Provider, T]:
        """Try the routes (retries, fallback, circuit breakers, deadline: core/inference/router.py) until one
        answers; only failures before any byte reaches the client get here. `headers` (the
        response's) learn the provider that served and the number of attempts."""
        served = await trace.routed(partial(self.router.first, model), timed(attempt), self.catalog.providers)
        logs.note(provider=served.provider.id)
        if headers is not None:
            headers["x-tollway-provider"] = served.provider.id
            headers["x-tollway-attempts"] = str(served.attempts)
        return served.provider, served.value

    # -- chat ---------------------------------------------------------------------------------

    async def chat(self, call: Call, body: dict[str, Any]) -> Result:
        request = validate(ChatRequest, body)
        # suffix, venice_parameters, trait/compatibility, deprecation, character, system prompts
        plan = chat_plan.prepare(self.catalog, body, call.caller, search_configured=self.search is not None)
        model = plan.model
        await policy.enforce(self.catalog, call.caller, body, model)  # 422 CONTENT_BLOCKED before any charge
        body = plan.body
        assert model.token_prices is not None
        prompt_estimate = tokens.count_prompt(body) + plan.context_allowance
        hold_for = _priced(
            partial(holds.chat_hold, model.token_prices, prompt_estimate, request.n or 1), model, call
        )
        # The hold covers the cap the upstream is sent (chat_plan.output_cap) on every choice; when
        # the balance or the key's limit cannot pay for it, the cap shrinks to what they can pay,
        # down to one token a choice (issue 19 item 2), and the upstream is sent the smaller cap.
        estimate = hold_for(plan.max_output)
        outputs = plan.max_output * (request.n or 1)
        admitted = await self.admit(call, model, estimate, prompt_estimate + outputs, least_nano=hold_for(1))
        if admitted.hold.held_nano < estimate:
            plan.clamp(holds.affordable_cap(hold_for, admitted.hold.held_nano, plan.max_output))
            admitted.headers["x-tollway-output-cap"] = str(plan.max_output)
        admitted.trace.max_tokens(plan.max_output)
        admitted.headers.update(plan.headers)
        admitted.venice = plan
        wants_usage = bool(request.stream_options and request.stream_options.include_usage)
        async with admitted.hold:  # a failure before the first byte releases it
            body = await plan.augment(self.search)  # web search / scraping, after the money is held
            if request.stream:
                return await self.stream(
                    call,
                    admitted,
                    lambda provider, upstream_model: provider.chat_stream({**body, "model": upstream_model}),
                    prompt_estimate,
                    wants_usage,
                )
            return await self._chat_buffered(admitted, body, prompt_estimate)

    async def _chat_buffered(self, admitted: Admitted, body: dict[str, Any], prompt_estimate: int) -> Result:
        provider, result = await self.first_route(
            admitted.model,
            lambda p, upstream_model: p.chat({**body, "model": upstream_model}),
            admitted.headers,
            admitted.trace,
        )
        usage = usage_of(result.get("usage"))
        source = "provider"
        if usage is None:
            texts = [text for c in result.get("choices") or () for text in generated_texts(c.get("message"))]
            usage, source = TokenUsage(prompt_estimate, tokens.count(texts)), "estimated"
        if admitted.venice is not None:
            admitted.venice.finish(result)  # <think> stripping, search documents, venice_parameters echo
        result["model"] = admitted.model.id
        result["usage"] = usage_dict(usage)
        for choice in result.get("choices") or ():
            if isinstance(choice, dict):
                choice.setdefault("logprobs", None)  # OpenAI's and Venice's answers always carry it
        if admitted.batch is not None:
            await admitted.batch.keep(result)  # before the settlement that records the line
        charged = await self.settle(admitted, provider.id, usage, source, "completed")
        result["usage"]["cost"] = cost_number(charged)
        return Result(headers=charged_headers(admitted.headers, charged), body=result)

    async def stream(
        self,
        call: Call,
        admitted: Admitted,
        start: Callable[[Provider, str], AsyncIterator[dict[str, Any]]],
        prompt_estimate: int,
        wants_usage: bool,
        chunk_object: str = "chat.completion.chunk",
    ) -> Result:
        """Open the upstream stream `start` gives, then relay and meter it in its own task
        (core/inference/chat_stream.py). Chat's and legacy completions' (`chunk_object` "text_completion")."""
        first, upstream, settle = await self.open_stream(admitted, start)
        stream = ChatStream(
            request_id=call.request_id,
            model_id=admitted.model.id,
            first=first,
            upstream=upstream,
            settle=settle,
            prompt_estimate=prompt_estimate,
            wants_usage=wants_usage,
            drain_seconds=self._drain_seconds,
            venice=admitted.venice,
            chunk_object=chunk_object,
            trace=admitted.trace,
        )
        return Result(headers=admitted.headers, frames=self.relay(stream))

    async def open_stream(
        self, admitted: Admitted, start: Callable[[Provider, str], AsyncIterator[dict[str, Any]]]
    ) -> tuple[dict[str, Any] | None, AsyncIterator[dict[str, Any]], Settle]:
        """On the first route that answers (retries and fallback only before its first event), the
        stream `start` opens: its first event (None: empty), the rest, and that route's settlement."""

        async def first_event(provider: Provider, upstream_model: str) -> tuple[dict[str, Any] | None, Any]:
            iterator = start(provider, upstream_model).__aiter__()
            return await anext(iterator, None), iterator

        provider, (first, upstream) = await self.first_route(
            admitted.model, first_event, admitted.headers, admitted.trace
        )

        async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
            return await self.settle(admitted, provider.id, usage, source, outcome, status)

        return first, upstream, settle

    @property
    def drain_seconds(self) -> float:
        """How long a stream whose client left is still read and metered."""
        return self._drain_seconds

    def relay(self, stream: ChatStream) -> AsyncIterator[bytes]:
        """Start a metered relay, kept among the streams a reload or shutdown waits for."""
        return stream.start(self._background)

    def count_tokens(self, call: Call, body: dict[str, Any]) -> int:
        """The prompt tokens of a chat request as its hold would count them (the same plan, the same
        tokenizer). Free: no hold, no upstream; the key must still be one that may call the model."""
        validate(ChatRequest, body)
        plan = chat_plan.prepare(self.catalog, body, call.caller, search_configured=self.search is not None)
        admission.check_tier(call.caller, plan.model)
        return tokens.count_prompt(plan.body)

    # -- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, call: Call, body: dict[str, Any]) -> Result:
        request = validate(EmbeddingsRequest, body)
        model = self._resolve(request.model, "embedding")
        assert model.token_prices is not None
        if request.dimensions is not None and not model.supports("dimensions"):
            raise TollwayError(
                ErrorCode.UNSUPPORTED_CAPABILITY,
                f"{model.id!r} does not support `dimensions`.",
                param="dimensions",
            )
        texts = [request.input] if isinstance(request.input, str) else request.input
        if any(not t for t in texts):
            raise TollwayError(ErrorCode.VALIDATION, "`input` must not contain empty strings.", param="input")
        estimate_tokens = tokens.count(texts) + len(texts) * 2
        prices = model.token_prices
        estimate = _priced(lambda n: token_cost(prices, TokenUsage(n)), model, call)(estimate_tokens)
        admitted = await self.admit(call, model, estimate, estimate_tokens)
        async with admitted.hold:
            provider, result = await self.first_route(
                model,
                lambda p, upstream_model: p.embed({**body, "model": upstream_model}),
                admitted.headers,
                admitted.trace,
            )
            usage = usage_of(result.get("usage"), completion=False)
            source = "provider"
            if usage is None:
                usage, source = TokenUsage(estimate_tokens), "estimated"
            if request.encoding_format == "base64":
                for item in result.get("data") or ():
                    vector = item["embedding"]
                    item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            result["model"] = model.id
            result["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
            if admitted.batch is not None:
                await admitted.batch.keep(result)  # before the settlement that records the line
            charged = await self.settle(admitted, provider.id, usage, source, "completed")
        result["usage"]["cost"] = cost_number(charged)
        return Result(headers=charged_headers(admitted.headers, charged), body=result)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        """A copy of the streams still metering (a catalog reload waits for them)."""
        return set(self._background)

    async def drain(self, seconds: float, settle_seconds: float = 10.0) -> None:
        """Shutdown: wait (bounded) for streams still metering, then cut the rest; a cut stream
        settles what it relayed before the ledger closes."""
        if not self._background:
            return
        await asyncio.wait(set(self._background), timeout=seconds)
        await self.cut_streams(settle_seconds)

    async def cut_streams(self, settle_seconds: float = 10.0) -> int:
        """Cut every stream still metering now (chat_stream.cut_attended): each settles, and a client
        still reading gets the shutdown frame. The server calls it when the shutdown grace runs out."""
        return await cut_attended(set(self._background), settle_seconds)


def charged_headers(headers: dict[str, str], charged: int) -> dict[str, str]:
    """A buffered answer's headers, with what the ledger charged for it (the figure of `usage.cost`)."""
    return {**headers, COST_HEADER: nano_to_usd(charged)}


def _priced(hold_for: Callable[[int], int], model: CatalogModel, call: Call) -> Callable[[int], int]:
    """A hold at the price the call pays: a batch line's is less the model's batch discount."""
    if call.batch is None:
        return hold_for
    discount = model.config.pricing.batch_discount
    return lambda amount: batch_price(hold_for(amount), discount)
