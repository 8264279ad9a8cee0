"""OpenAI-compatible upstream over pooled httpx2 connections, with chunk-by-chunk SSE relay."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from tollway.core.catalog import ProviderConfig
from tollway.providers.base import UpstreamError
from tollway.providers.sse import iter_events

RETRYABLE_STATUSES = {408, 409, 429, 500, 502, 503, 504}


def _retry_after(response: httpx2.Response) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


class OpenAIProvider:
    def __init__(self, config: ProviderConfig, *, timeout: float) -> None:
        if not config.base_url:
            raise ValueError(f"provider {config.id!r} needs a base_url")
        self.id = config.id
        headers = {"content-type": "application/json", **config.headers}
        secret = os.environ.get(config.api_key_env) if config.api_key_env else None
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        if config.organization:
            headers["openai-organization"] = config.organization
        self._client = httpx2.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx2.Timeout(config.timeout_seconds or timeout, connect=10.0),
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=128),
        )

    def _failure(self, response: httpx2.Response) -> UpstreamError:
        # The upstream's own message is NOT passed on: it may echo our key (OpenAI does) or content.
        return UpstreamError(
            f"provider {self.id!r} answered HTTP {response.status_code}",
            status=response.status_code,
            retryable=response.status_code in RETRYABLE_STATUSES,
            retry_after=_retry_after(response),
        )

    def _transport_failure(self, exc: httpx2.HTTPError) -> UpstreamError:
        timeout = isinstance(exc, httpx2.TimeoutException)
        kind = "timed out" if timeout else f"failed ({type(exc).__name__})"
        return UpstreamError(f"provider {self.id!r} {kind}", timeout=timeout)

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(path, content=orjson.dumps(body))
        except httpx2.HTTPError as exc:
            raise self._transport_failure(exc) from None
        if response.status_code != 200:
            raise self._failure(response)
        try:
            result = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider {self.id!r} sent invalid JSON") from None
        if not isinstance(result, dict):
            raise UpstreamError(f"provider {self.id!r} sent an unexpected body")
        return result

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/chat/completions", {**body, "stream": False})

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/embeddings", {**body, "encoding_format": "float"})

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        # Usage is always requested upstream: it is what we bill (DESIGN §4).
        request = {
            **body,
            "stream": True,
            "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
        }
        done = False
        try:
            async with self._client.stream(
                "POST", "/chat/completions", content=orjson.dumps(request)
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._failure(response)
                async for event in iter_events(response.aiter_lines()):
                    if event.data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(f"provider {self.id!r} sent a malformed stream event") from None
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise UpstreamError(
                            f"provider {self.id!r} reported an error mid-stream", retryable=False
                        )
                    yield chunk
        except httpx2.HTTPError as exc:
            raise self._transport_failure(exc) from None
        if not done:
            # No [DONE]: the upstream was cut off. Never pass a truncated answer off as complete.
            raise UpstreamError(
                f"provider {self.id!r} ended the stream before it was complete", retryable=False
            )

    async def aclose(self) -> None:
        await self._client.aclose()
