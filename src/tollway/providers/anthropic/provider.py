"""The `anthropic` provider kind: the Messages API, buffered and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from tollway.base.config import ProviderConfig
from tollway.dialects.anthropic.shapes import request_from_openai, response_to_openai
from tollway.dialects.anthropic.stream import StreamError, ToOpenAI
from tollway.dialects.sse import iter_events
from tollway.providers import checks, http
from tollway.providers.base import UpstreamError

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com/v1"


class AnthropicProvider:
    def __init__(self, config: ProviderConfig, *, timeout: float) -> None:
        self.id = config.id
        headers = {"anthropic-version": API_VERSION}
        if key := http.secret(config):
            headers["x-api-key"] = key
        config = config.model_copy(update={"base_url": config.base_url or DEFAULT_BASE_URL})
        self._client = http.client(config, headers, timeout=timeout)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        message = await http.post_json(self._client, self.id, "/messages", request_from_openai(body))
        return checks.chat_answer(self.id, checks.translated(self.id, response_to_openai, message))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        request = {**request_from_openai(body), "stream": True}
        translate = ToOpenAI()
        try:
            async with self._client.stream("POST", "/messages", content=orjson.dumps(request)) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http.status_failure(self.id, response)
                async for event in iter_events(response.aiter_lines()):
                    data = http.load_event(self.id, event.data)
                    try:
                        chunks = checks.translated(
                            self.id, translate.feed, event.event, data, retryable=False
                        )
                    except StreamError as exc:
                        overloaded = str(exc) == "overloaded_error"
                        raise UpstreamError(
                            f"provider {self.id!r} reported {exc} mid-stream",
                            retryable=overloaded and not translate.id,
                        ) from None
                    for chunk in chunks:
                        yield checks.chat_chunk(self.id, chunk)
                    if translate.done:
                        break
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if not translate.done:
            raise http.cut_failure(self.id)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"provider {self.id!r} (anthropic) has no embeddings", retryable=False)

    async def aclose(self) -> None:
        await self._client.aclose()
