"""OpenAI-compatible upstream over pooled httpx2 connections, with chunk-by-chunk SSE relay."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from tollway.base.config import ProviderConfig
from tollway.dialects.sse import iter_events
from tollway.dialects.translation import without_cache_hints
from tollway.providers import checks, http
from tollway.providers.base import UpstreamError
from tollway.providers.openai.responses import OpenAIResponses

log = logging.getLogger("tollway.providers.openai")
# What a request cannot do without, whatever an allow-list says.
ESSENTIAL_PARAMS = frozenset(
    {"model", "messages", "prompt", "stream", "stream_options", "input", "encoding_format"}
)
# The output cap (core/inference/chat_plan.py output_cap) is essential too: the hold was sized for it.
CAP_FIELDS = ("max_completion_tokens", "max_tokens")


class OpenAIProvider(OpenAIResponses):
    def __init__(self, config: ProviderConfig, *, timeout: float) -> None:
        self.id = config.id
        self.flavor = config.flavor
        self.protocols = frozenset(
            config.protocols
        )  # OpenAI APIs served natively (providers/openai/responses.py)
        headers = {}
        if key := http.secret(config):
            headers["authorization"] = f"Bearer {key}"
        if config.organization:
            headers["openai-organization"] = config.organization
        self._allowed = (
            None if config.allowed_params is None else ESSENTIAL_PARAMS | set(config.allowed_params)
        )
        self._client = http.client(config, headers, timeout=timeout)

    def _filter(self, body: dict[str, Any]) -> dict[str, Any]:
        """Drop what this upstream does not take (vLLM and Ollama refuse unknown fields, some with 400);
        the output cap is kept, in whichever of its two names the allow-list takes. Anthropic's cache
        breakpoints go too: these runtimes cache prompts by themselves (dialects/translation.py)."""
        body = without_cache_hints(body)
        if self._allowed is None:
            return body
        dropped = [name for name in body if name not in self._allowed]
        if not dropped:
            return body
        log.debug(
            "dropped parameters the upstream does not take", extra={"provider": self.id, "params": dropped}
        )
        kept = {k: v for k, v in body.items() if k in self._allowed}
        cap = next((body[name] for name in CAP_FIELDS if body.get(name) is not None), None)
        if cap is not None and not any(name in kept for name in CAP_FIELDS):
            kept[next((name for name in CAP_FIELDS if name in self._allowed), "max_tokens")] = cap
        return kept

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await http.post_json(
            self._client, self.id, "/chat/completions", self._filter({**body, "stream": False})
        )
        return checks.chat_answer(self.id, answer)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await http.post_json(
            self._client, self.id, "/embeddings", self._filter({**body, "encoding_format": "float"})
        )
        return checks.embeddings(self.id, answer)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._stream("/chat/completions", body):
            yield checks.chat_chunk(self.id, chunk)

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Legacy `/completions` (a raw prompt): only on upstreams whose model declares it."""
        answer = await http.post_json(
            self._client, self.id, "/completions", self._filter({**body, "stream": False})
        )
        return checks.completion_answer(self.id, answer)

    async def complete_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._stream("/completions", body):
            yield checks.completion_chunk(self.id, chunk)

    async def moderate(self, body: dict[str, Any]) -> dict[str, Any]:
        """`/moderations`, the upstream's own scores passed on (never made up here)."""
        answer = await http.post_json(self._client, self.id, "/moderations", body)
        return checks.moderation_answer(self.id, answer)

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        # Usage is always requested upstream: it is what we bill (DESIGN §4).
        request = self._filter(
            {
                **body,
                "stream": True,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
            }
        )
        done = False
        try:
            async with self._client.stream("POST", path, content=orjson.dumps(request)) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http.status_failure(self.id, response)
                async for event in iter_events(response.aiter_lines()):
                    if event.data == "[DONE]":
                        done = True
                        break
                    chunk = http.load_event(self.id, event.data)
                    if "error" in chunk:
                        raise UpstreamError(
                            f"provider {self.id!r} reported an error mid-stream", retryable=False
                        )
                    yield chunk
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if not done:
            # No [DONE]: the upstream was cut off. Never pass a truncated answer off as complete.
            raise http.cut_failure(self.id)

    async def aclose(self) -> None:
        await self._client.aclose()
