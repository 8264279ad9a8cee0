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
from typing import Any, TypeVar

import orjson

from tollway.core import chat_plan, model_names, policy, tokens
from tollway.core.catalog import Catalog, CatalogModel
from tollway.core.clock import utcnow
from tollway.core.keys import Caller
from tollway.core.ledger import Ledger, Reservation
from tollway.core.limits import RateGate, Ticket
from tollway.core.pricing import TokenUsage, nano_to_usd, token_cost
from tollway.core.router import Router
from tollway.core.schemas import ChatRequest, EmbeddingsRequest, validate
from tollway.core.search import SearchProvider
from tollway.errors import ErrorCode, TollwayError
from tollway.ops import logs, metrics
from tollway.providers.base import Provider, UpstreamError

log = logging.getLogger("tollway.pipeline")
T = TypeVar("T")
DEFAULT_OUTPUT_CAP = 4096
_END = object()


@dataclass(slots=True)
class Call:
    """One inference request as it moves through the pipeline."""

    request_id: str
    caller: Caller
    endpoint: str
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class Result:
    """What an adapter renders: a JSON body, or SSE frames, plus headers for the client."""

    headers: dict[str, str]
    body: dict[str, Any] | None = None
    frames: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class _Admitted:
    model: CatalogModel
    reservation: Reservation
    headers: dict[str, str]
    rate: Ticket = field(default_factory=lambda: Ticket(None))  # limiter lease, finished once
    venice: chat_plan.ChatPlan | None = None  # chat's Venice extensions (core/chat_plan.py)


def _usage_of(raw: Any) -> TokenUsage | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("prompt_tokens"), int):
        return None
    details_in = raw.get("prompt_tokens_details") or {}
    details_out = raw.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=raw["prompt_tokens"],
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details_in.get("cached_tokens") or 0) if isinstance(details_in, dict) else 0,
        reasoning_tokens=int(details_out.get("reasoning_tokens") or 0)
        if isinstance(details_out, dict)
        else 0,
    )


def _usage_dict(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


def _delta_texts(chunk: dict[str, Any]) -> list[str]:
    texts = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str):
            texts.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                texts.append(arguments)
    return texts


def with_system_prompt(body: dict[str, Any], model: CatalogModel) -> dict[str, Any]:
    prompt = model.config.system_prompt
    venice = body.get("venice_parameters")
    if not prompt or (isinstance(venice, dict) and venice.get("include_venice_system_prompt") is False):
        return body
    return {**body, "messages": [{"role": "system", "content": prompt}, *body["messages"]]}


def _timed(attempt: Callable[[Provider, str], Awaitable[T]]) -> Callable[[Provider, str], Awaitable[T]]:
    """An upstream attempt that records its latency and failure in the metrics (ops/metrics.py)."""

    async def timed(provider: Provider, upstream_model: str) -> T:
        started = time.perf_counter()
        try:
            value = await attempt(provider, upstream_model)
        except UpstreamError as exc:
            metrics.record_upstream(provider.id, time.perf_counter() - started, exc.status or 0)
            raise
        except TimeoutError:
            metrics.record_upstream(provider.id, time.perf_counter() - started, 504)
            raise
        metrics.record_upstream(provider.id, time.perf_counter() - started)
        return value

    return timed


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
        self.search: SearchProvider | None = None  # web search for chat (core/search.py)

    # -- admission ----------------------------------------------------------------------------

    def _resolve(self, name: str, model_type: str) -> CatalogModel:
        return model_names.resolve(self.catalog, name, model_type)  # id, alias, trait, compatibility

    @staticmethod
    def _check_policy(caller: Caller, model: CatalogModel) -> None:
        if model.config.tier != "uncensored":
            return
        if caller.content_tier != "uncensored":
            raise TollwayError(ErrorCode.CONTENT_TIER_FORBIDDEN, param="model")
        if not caller.age_verified:
            raise TollwayError(ErrorCode.AGE_VERIFICATION_REQUIRED, param="model")

    async def _admit(
        self, call: Call, model: CatalogModel, estimate_nano: int, estimate_tokens: int = 0
    ) -> _Admitted:
        caller = call.caller
        if caller.account_id is None:
            raise TollwayError(
                ErrorCode.UNAUTHORIZED, "The operator key manages accounts; mint a key to call models."
            )
        self._check_policy(caller, model)
        logs.note(model=model.id, account_id=caller.account_id, key_id=caller.key_id)  # access log
        # Rate limits before money: a refused request holds nothing (DESIGN §3 step 6).
        rate = Ticket(None)
        if self.rate_gate is not None:
            rate = await self.rate_gate.admit(caller, model, estimate_tokens)
        try:
            reservation = await self.ledger.reserve(
                caller.account_id, call.request_id, estimate_nano, caller.key_limit, key_id=caller.key_id
            )
        except BaseException:
            rate.finish_soon()  # free the in-flight slot and the token estimate
            raise
        balance = nano_to_usd(reservation.available_before_nano)
        headers = {
            "x-balance-usd": balance,
            "x-venice-balance-usd": balance,
            "x-tollway-model-id": model.id,
            "x-venice-model-id": model.id,
            "x-tollway-model-name": model.config.name or model.id,
            "x-venice-model-name": model.config.name or model.id,
            "x-tollway-timestamp": utcnow().isoformat(timespec="milliseconds"),
            "x-venice-timestamp": utcnow().isoformat(timespec="milliseconds"),
            **rate.headers,  # computed at admission, so streams carry them from the first byte
        }
        return _Admitted(model, reservation, headers, rate)

    def _usage_row(
        self,
        call: Call,
        model: CatalogModel,
        provider: str | None,
        usage: TokenUsage,
        source: str,
        outcome: str,
        status: int,
    ) -> dict[str, Any]:
        return {
            "request_id": call.request_id,
            "account_id": call.caller.account_id,
            "key_id": call.caller.key_id,
            "key_label": call.caller.label,
            "model": model.id,
            "endpoint": call.endpoint,
            "provider": provider,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_source": source,
            "outcome": outcome,
            "status_code": status,
            "latency_ms": int((time.perf_counter() - call.started) * 1000),
            "created_at": utcnow(),
        }

    async def _settle(
        self,
        call: Call,
        admitted: _Admitted,
        provider: str | None,
        usage: TokenUsage,
        source: str,
        outcome: str,
        status: int = 200,
    ) -> int:
        assert admitted.model.token_prices is not None
        cost = token_cost(admitted.model.token_prices, usage)
        row = self._usage_row(call, admitted.model, provider, usage, source, outcome, status)
        assert call.caller.account_id is not None
        try:
            return await self.ledger.settle(call.caller.account_id, call.request_id, cost, row)
        finally:
            await admitted.rate.finish(usage.prompt_tokens + usage.completion_tokens)  # actual tokens

    async def _release(self, call: Call, admitted: _Admitted, error: TollwayError) -> None:
        row = self._usage_row(
            call, admitted.model, None, TokenUsage(), "none", "upstream_error", error.status
        )
        await admitted.rate.finish(0)
        await self.ledger.release(call.request_id, row)

    async def _first_route(
        self,
        model: CatalogModel,
        attempt: Callable[[Provider, str], Awaitable[T]],
        headers: dict[str, str] | None = None,
    ) -> tuple[Provider, T]:
        """Try the routes (retries, fallback, circuit breakers, deadline: core/router.py) until one
        answers; only failures before any byte reaches the client get here. `headers` (the
        response's) learn the provider that served and the number of attempts."""
        served = await self.router.first(model, _timed(attempt))
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
        await policy.enforce(self.catalog, call.caller, body)  # 422 CONTENT_BLOCKED before any charge
        body = plan.body
        assert model.token_prices is not None
        cap = model.config.max_output_tokens or DEFAULT_OUTPUT_CAP
        asked = request.max_completion_tokens or request.max_tokens
        max_output = min(asked, cap) if asked else cap
        prompt_estimate = tokens.count_prompt(body) + plan.context_allowance
        estimate = token_cost(model.token_prices, TokenUsage(prompt_estimate, max_output * (request.n or 1)))
        admitted = await self._admit(call, model, estimate, prompt_estimate + max_output * (request.n or 1))
        admitted.headers.update(plan.headers)
        admitted.venice = plan
        wants_usage = bool(request.stream_options and request.stream_options.include_usage)
        try:
            body = await plan.augment(self.search)  # web search / scraping, after the money is held
            if request.stream:
                return await self._chat_stream(call, admitted, body, prompt_estimate, wants_usage)
            return await self._chat_buffered(call, admitted, body, prompt_estimate)
        except TollwayError as exc:
            await self._release(call, admitted, exc)
            raise
        except BaseException:
            admitted.rate.finish_soon()
            await self.ledger.release(call.request_id)
            raise

    async def _chat_buffered(
        self, call: Call, admitted: _Admitted, body: dict[str, Any], prompt_estimate: int
    ) -> Result:
        provider, result = await self._first_route(
            admitted.model,
            lambda p, upstream_model: p.chat({**body, "model": upstream_model}),
            admitted.headers,
        )
        usage = _usage_of(result.get("usage"))
        source = "provider"
        if usage is None:
            texts = [c.get("message", {}).get("content") or "" for c in result.get("choices") or ()]
            usage, source = TokenUsage(prompt_estimate, tokens.count(texts)), "estimated"
        await self._settle(call, admitted, provider.id, usage, source, "completed")
        if admitted.venice is not None:
            admitted.venice.finish(result)  # <think> stripping, search documents, venice_parameters echo
        result["model"] = admitted.model.id
        result["usage"] = _usage_dict(usage)
        return Result(headers={**admitted.headers, "x-tollway-provider": provider.id}, body=result)

    async def _chat_stream(
        self, call: Call, admitted: _Admitted, body: dict[str, Any], prompt_estimate: int, wants_usage: bool
    ) -> Result:
        """Relay chunk by chunk. The upstream is read by its own task, so a client that leaves does
        not stop the metering: the task drains the upstream (bounded) and bills what it produced."""

        async def open_stream(provider: Provider, upstream_model: str) -> tuple[dict[str, Any] | None, Any]:
            iterator = provider.chat_stream({**body, "model": upstream_model}).__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = None
            return first, iterator

        provider, (first, upstream) = await self._first_route(admitted.model, open_stream, admitted.headers)
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        state = {"client_gone": False}
        model_id = admitted.model.id

        async def produce() -> None:
            last_usage: TokenUsage | None = None
            produced: list[str] = []
            outcome, status, meta = "completed", 200, {"id": "", "created": 0}

            async def emit(frame: bytes | object) -> None:
                if not state["client_gone"]:
                    await queue.put(frame)

            async def relay(chunk: dict[str, Any]) -> None:
                nonlocal last_usage
                usage = _usage_of(chunk.pop("usage", None))
                if usage is not None:
                    last_usage = usage  # the LAST usage object is the total; never sum them
                meta["id"], meta["created"] = (
                    chunk.get("id", meta["id"]),
                    chunk.get("created", meta["created"]),
                )
                produced.extend(_delta_texts(chunk))
                if admitted.venice is not None:
                    chunk = admitted.venice.chunk(chunk)  # <think> stripping across chunks, search results
                if chunk.get("choices"):
                    chunk["model"] = model_id
                    await emit(_sse(chunk))

            failure: ErrorCode | None = None
            try:
                async with asyncio.timeout(None) as deadline:
                    if first is not None:
                        await relay(first)
                    async for chunk in upstream:
                        if state["client_gone"] and deadline.when() is None:
                            deadline.reschedule(asyncio.get_running_loop().time() + self._drain_seconds)
                        await relay(chunk)
            except UpstreamError:
                outcome, status, failure = "upstream_error", 502, ErrorCode.UPSTREAM_ERROR
            except TimeoutError:
                outcome, status = "client_disconnect_timeout", 499
            except asyncio.CancelledError:
                # Only drain() cancels a producer: the process is stopping and the grace is over.
                # Bill what was relayed (estimated when the upstream never sent usage) rather
                # than leave the hold for a sweeper on another replica to release unpaid.
                outcome, status, failure = "shutdown", 503, ErrorCode.SERVICE_UNAVAILABLE
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
            except Exception:
                log.exception("stream relay failed")
                outcome, status, failure = "internal_error", 500, ErrorCode.INTERNAL
            if state["client_gone"] and outcome == "completed":
                outcome, status = "client_disconnect", 499
            source = "provider"
            if last_usage is None:
                source = "estimated"
                last_usage = TokenUsage(prompt_estimate, tokens.count(produced))
            try:
                # Settle before the last frame: a client that has seen the end of the stream can
                # already see the charge.
                await self._settle(call, admitted, provider.id, last_usage, source, outcome, status)
            except Exception:
                log.exception("settlement failed; the reservation sweeper will release the hold")
            if failure is not None:
                message = {
                    ErrorCode.UPSTREAM_ERROR: "The upstream failed mid-stream; the answer is incomplete.",
                    ErrorCode.SERVICE_UNAVAILABLE: "The server is shutting down; the answer is "
                    "incomplete and was billed as far as it went. Retry on another replica.",
                }.get(failure, failure.default_message)
                await emit(
                    _sse(
                        {
                            "error": {
                                "message": message,
                                "type": failure.type,
                                "code": failure.name,
                                "param": None,
                                "request_id": call.request_id,
                            }
                        }
                    )
                )
            elif outcome == "completed":
                if wants_usage:
                    await emit(
                        _sse(
                            {
                                "id": meta["id"],
                                "object": "chat.completion.chunk",
                                "created": meta["created"],
                                "model": model_id,
                                "choices": [],
                                "usage": _usage_dict(last_usage),
                            }
                        )
                    )
                await emit(_sse("[DONE]"))
            await emit(_END)

        task = asyncio.create_task(produce())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

        async def frames() -> AsyncIterator[bytes]:
            try:
                while (frame := await queue.get()) is not _END:
                    yield frame
            finally:
                if not task.done():
                    state["client_gone"] = True
                    while not queue.empty():  # unblock a producer waiting on a full queue
                        queue.get_nowait()

        return Result(headers={**admitted.headers, "x-tollway-provider": provider.id}, frames=frames())

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
        admitted = await self._admit(
            call, model, token_cost(model.token_prices, TokenUsage(estimate_tokens)), estimate_tokens
        )
        try:
            provider, result = await self._first_route(
                model, lambda p, upstream_model: p.embed({**body, "model": upstream_model}), admitted.headers
            )
        except TollwayError as exc:
            await self._release(call, admitted, exc)
            raise
        except BaseException:
            admitted.rate.finish_soon()
            await self.ledger.release(call.request_id)
            raise
        usage = _usage_of(result.get("usage"))
        source = "provider"
        if usage is None:
            usage, source = TokenUsage(estimate_tokens), "estimated"
        await self._settle(call, admitted, provider.id, usage, source, "completed")
        if request.encoding_format == "base64":
            for item in result.get("data") or ():
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        result["model"] = model.id
        result["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
        return Result(headers={**admitted.headers, "x-tollway-provider": provider.id}, body=result)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        """A copy of the streams still metering (a catalog reload waits for them)."""
        return set(self._background)

    async def drain(self, seconds: float, settle_seconds: float = 10.0) -> None:
        """Shutdown: wait (bounded) for streams still metering, then cut the rest; a cut stream
        settles what it relayed before the ledger closes."""
        if not self._background:
            return
        _, pending = await asyncio.wait(set(self._background), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "shutdown cut %d stream(s) still running; each is billed for what it relayed", len(pending)
            )
            await asyncio.wait(pending, timeout=settle_seconds)
