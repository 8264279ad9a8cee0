"""A streamed chat answer relayed chunk by chunk while it is metered (DESIGN §3, steps 9–10).

The upstream is read by its own task (the producer) and frames reach the client through a bounded
queue, so a client that leaves does not stop the metering: the producer drains the upstream for
at most `drain_seconds` and bills what it produced. Settlement happens before the last frame, so
a client that has seen the end of the stream can already see the charge. Usage is the LAST usage
object the upstream sent (never a sum); without one, it is estimated from the relayed text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from tollway.base import tokens
from tollway.core.inference import chat_plan, genai
from tollway.core.money.prices import TokenUsage, cost_number, usage_dict, usage_of
from tollway.errors import ErrorCode
from tollway.providers.base import UpstreamError

log = logging.getLogger("tollway.pipeline")
_END = END = object()  # the last item of a relay's queue (END: for relays built on this one)
_MESSAGES = {
    ErrorCode.UPSTREAM_ERROR: "The upstream failed mid-stream; the answer is incomplete.",
    ErrorCode.SERVICE_UNAVAILABLE: "The server is shutting down; the answer is incomplete and was "
    "billed as far as it went. Retry on another replica.",
}

# settle(usage, usage_source, outcome, status) -> what was charged
Settle = Callable[[TokenUsage, str, str, int], Awaitable[int]]


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


def generated_texts(message: Any) -> list[str]:
    """What a model generated in one message or delta, for an estimate when the upstream reports no
    usage: its content, its reasoning, and its tool calls' arguments (an answer may be only a tool
    call: counting its content alone would bill it zero)."""
    if not isinstance(message, dict):
        return []
    texts = [message[name] for name in ("content", "reasoning_content") if isinstance(message.get(name), str)]
    calls = [*(message.get("tool_calls") or ()), message.get("function_call")]
    for call in calls:
        function = (call.get("function") or call) if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    return texts


def delta_texts(chunk: dict[str, Any]) -> list[str]:
    """The generated text of a chunk (a chat delta, or a legacy completion's `text`): what an estimate counts."""
    texts = []
    for choice in chunk.get("choices") or ():
        texts.extend(generated_texts(choice.get("delta")))
        if isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    return texts


async def cut_attended(tasks: set[asyncio.Task[None]], settle_seconds: float) -> int:
    """Shutdown: cut the streams still metering (their producers), while their clients may still read.

    Each cut producer settles what it relayed, then sends its client a final error frame with code
    SERVICE_UNAVAILABLE (the route's dialect turns it into its own shape: Anthropic's
    `overloaded_error` event, Gemini's UNAVAILABLE) and ends the stream. Returns how many were cut;
    waits at most `settle_seconds` for them to settle."""
    live = {task for task in tasks if not task.done()}
    for task in live:
        task.cancel()
    if live:
        log.warning("shutdown cut %d stream(s) still running; each is billed for what it relayed", len(live))
        await asyncio.wait(live, timeout=settle_seconds)
    return len(live)


class ChatStream:
    def __init__(
        self,
        *,
        request_id: str,
        model_id: str,
        first: dict[str, Any] | None,
        upstream: AsyncIterator[dict[str, Any]],
        settle: Settle,
        prompt_estimate: int,
        wants_usage: bool,
        drain_seconds: float,
        venice: chat_plan.ChatPlan | None = None,
        chunk_object: str = "chat.completion.chunk",  # legacy completions: "text_completion"
        trace: genai.ModelSpan = genai.OFF,  # the call's GenAI span: each chunk's id, model, finish reason
    ) -> None:
        self._request_id = request_id
        self._model_id = model_id
        self._first = first
        self._upstream = upstream
        self._settle = settle
        self._prompt_estimate = prompt_estimate
        self._wants_usage = wants_usage
        self._drain_seconds = drain_seconds
        self._venice = venice
        self._chunk_object = chunk_object
        self._trace = trace
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        self._client_gone = False
        self._last_usage: TokenUsage | None = None
        self._produced: list[str] = []
        self._meta: dict[str, Any] = {"id": "", "created": 0}

    def start(self, background: set[asyncio.Task[None]]) -> AsyncIterator[bytes]:
        """Start the producer (kept in `background` until it ends) and return the client's frames."""
        task = asyncio.create_task(self._produce())
        background.add(task)
        task.add_done_callback(background.discard)
        return self._frames(task)

    async def _frames(self, task: asyncio.Task[None]) -> AsyncIterator[bytes]:
        try:
            while (frame := await self._queue.get()) is not _END:
                yield frame
        finally:
            if not task.done():
                self._client_gone = True
                while not self._queue.empty():  # unblock a producer waiting on a full queue
                    self._queue.get_nowait()

    async def _emit(self, frame: bytes | object) -> None:
        if not self._client_gone:
            await self._queue.put(frame)

    async def _relay(self, chunk: dict[str, Any]) -> None:
        usage = usage_of(chunk.pop("usage", None))
        if usage is not None:
            self._last_usage = usage  # the LAST usage object is the total; never sum them
        self._trace.chunk(chunk)
        self._meta["id"] = chunk.get("id", self._meta["id"])
        self._meta["created"] = chunk.get("created", self._meta["created"])
        self._produced.extend(delta_texts(chunk))
        if self._venice is not None:
            chunk = self._venice.chunk(chunk)  # <think> stripping across chunks, search results
        if chunk.get("choices"):
            chunk["model"] = self._model_id
            await self._emit(sse(chunk))

    async def _produce(self) -> None:
        outcome, status, failure = "completed", 200, None
        try:
            async with asyncio.timeout(None) as deadline:
                if self._first is not None:
                    await self._relay(self._first)
                async for chunk in self._upstream:
                    if self._client_gone and deadline.when() is None:
                        deadline.reschedule(asyncio.get_running_loop().time() + self._drain_seconds)
                    await self._relay(chunk)
        except UpstreamError:
            outcome, status, failure = "upstream_error", 502, ErrorCode.UPSTREAM_ERROR
        except TimeoutError:
            outcome, status = "client_disconnect_timeout", 499
        except asyncio.CancelledError:
            # Only cut_attended() cancels a producer: the process is stopping and the grace is
            # over. Bill what was relayed rather than leave the hold for a sweeper to release unpaid.
            outcome, status, failure = "shutdown", 503, ErrorCode.SERVICE_UNAVAILABLE
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except Exception:
            log.exception("stream relay failed")
            outcome, status, failure = "internal_error", 500, ErrorCode.INTERNAL
        if self._client_gone and outcome == "completed":
            outcome, status = "client_disconnect", 499
        usage, source = self._last_usage, "provider"
        if usage is None:
            usage, source = TokenUsage(self._prompt_estimate, tokens.count(self._produced)), "estimated"
        settling = asyncio.ensure_future(self._settle(usage, source, outcome, status))
        charged: int | None = None
        try:
            try:
                charged = await asyncio.shield(settling)
            except asyncio.CancelledError:
                # drain() cut the stream while it was settling: a cancelled settlement could be
                # rolled back (the hold left to the sweeper, unpaid). Let it land, then end the stream.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                charged = await settling
        except Exception:
            log.exception("settlement failed; the reservation sweeper will release the hold")
        await self._finish(failure, outcome, usage, charged)

    async def _finish(
        self, failure: ErrorCode | None, outcome: str, usage: TokenUsage, charged: int | None
    ) -> None:
        if failure is not None:
            error = {
                "message": _MESSAGES.get(failure, failure.default_message),
                "type": failure.type,
                "code": failure.name,
                "param": None,
                "request_id": self._request_id,
            }
            await self._emit(sse({"error": error}))
        elif outcome == "completed":
            if self._wants_usage:
                final = {
                    "id": self._meta["id"],
                    "object": self._chunk_object,
                    "created": self._meta["created"],
                    "model": self._model_id,
                    "choices": [],
                    "usage": usage_dict(usage),
                }
                if charged is not None:  # what the ledger recorded; unknown if settlement failed
                    final["usage"]["cost"] = cost_number(charged)
                await self._emit(sse(final))
            await self._emit(sse("[DONE]"))
        await self._emit(_END)
