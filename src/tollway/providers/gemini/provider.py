"""The `gemini` provider kind: generateContent and streamGenerateContent?alt=sse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx2
import orjson

from tollway.base.config import ProviderConfig
from tollway.dialects.gemini.shapes import request_from_openai, response_to_openai
from tollway.dialects.gemini.stream import ToOpenAI
from tollway.dialects.sse import iter_events
from tollway.providers import checks, http
from tollway.providers.base import UpstreamError

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


def _path(model: str, action: str) -> str:
    return f"/models/{quote(model.removeprefix('models/'), safe='-._~')}:{action}"


class GeminiProvider:
    def __init__(self, config: ProviderConfig, *, timeout: float) -> None:
        self.id = config.id
        headers = {}
        if key := http.secret(config):
            headers["x-goog-api-key"] = key  # a header, never `?key=`: URLs end up in logs
        config = config.model_copy(update={"base_url": config.base_url or DEFAULT_BASE_URL})
        self._client = http.client(config, headers, timeout=timeout)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        path = _path(body["model"], "generateContent")
        response = await http.post_json(self._client, self.id, path, request_from_openai(body))
        answer = checks.translated(self.id, response_to_openai, response, body["model"])
        return checks.chat_answer(self.id, answer)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        path = _path(body["model"], "streamGenerateContent") + "?alt=sse"
        translate = ToOpenAI(body["model"])
        try:
            request = orjson.dumps(request_from_openai(body))
            async with self._client.stream("POST", path, content=request) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http.status_failure(self.id, response)
                async for event in iter_events(response.aiter_lines()):
                    data = http.load_event(self.id, event.data)
                    if "error" in data:
                        raise UpstreamError(
                            f"provider {self.id!r} reported an error mid-stream", retryable=False
                        )
                    for chunk in checks.translated(self.id, translate.feed, data, retryable=False):
                        yield checks.chat_chunk(self.id, chunk)
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if not translate.done:
            # No finishReason: Gemini ends a stream by closing it, so this is the only sign of a cut.
            raise http.cut_failure(self.id)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"provider {self.id!r} (gemini) has no embeddings route here", retryable=False)

    async def aclose(self) -> None:
        await self._client.aclose()
