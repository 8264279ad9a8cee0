"""OpenAI's APIs beyond chat passed through as is to an upstream that serves them natively: the
Responses API, image variations and audio translations (the catalog provider's `protocols`).

The Responses API passed through to an upstream that serves it natively (catalog provider
`protocols: [responses]`), mixed into OpenAIProvider.

The request goes as the caller sent it (core/inference/responses/native.py has already set the model,
the output cap the hold pays for and `store: false`); the answer comes back as the upstream wrote it.
A streamed answer is its typed events, as dicts; an `error` or `response.failed` event, or a stream
that ends before its `response.completed`/`.incomplete`, raises UpstreamError, so the relay bills
what was produced and tells the client the answer is incomplete.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from tollway.dialects.sse import iter_events
from tollway.providers import http
from tollway.providers.base import UpstreamError
from tollway.providers.media import ImageOp, Transcript, TranscriptionJob
from tollway.providers.openai.media import OpenAIMedia, convert, multipart_headers

TERMINAL = frozenset({"response.completed", "response.incomplete"})
FAILED = frozenset({"error", "response.failed"})


class OpenAIResponses(OpenAIMedia):
    id: str
    protocols: frozenset[str]
    _client: httpx2.AsyncClient

    async def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await http.post_json(self._client, self.id, "/responses", {**body, "stream": False})
        if answer.get("object") != "response" or not isinstance(answer.get("output"), list):
            raise UpstreamError(f"provider {self.id!r} sent an unexpected Response")
        return answer

    async def respond_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's Responses events, each a dict with its `type`, up to the terminal one."""
        ended = False
        try:
            async with self._client.stream(
                "POST", "/responses", content=orjson.dumps({**body, "stream": True})
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http.status_failure(self.id, response)
                async for event in iter_events(response.aiter_lines()):
                    if event.data == "[DONE]":
                        continue
                    data = http.load_event(self.id, event.data)
                    kind = data.get("type")
                    if kind in FAILED:
                        raise UpstreamError(
                            f"provider {self.id!r} reported an error mid-stream", retryable=False
                        )
                    yield data
                    if kind in TERMINAL:
                        ended = True
                        break
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if not ended:
            raise http.cut_failure(self.id)

    # -- media routes some upstreams serve (`protocols: [image_variations, audio_translations]`) --

    def _serves(self, protocol: str) -> None:
        if protocol not in self.protocols:  # another route of the model may (the router moves on)
            raise UpstreamError(
                f"provider {self.id!r} does not serve {protocol}", retryable=False, kind="route"
            )

    async def image_variations(self, op: ImageOp, n: int, size: str) -> list[bytes]:
        """`n` variations of `op.image` (OpenAI's /images/variations, dall-e-2 style), as `op.format`."""
        self._serves("image_variations")
        response = await self._post(
            "/images/variations",
            headers=multipart_headers(),
            data={"model": op.model, "n": str(n), "size": size, "response_format": "b64_json"},
            files={"image": ("image.png", io.BytesIO(op.image), "image/png")},
        )
        try:
            items = orjson.loads(response.content).get("data")
        except (orjson.JSONDecodeError, AttributeError):
            raise UpstreamError(f"provider {self.id!r} sent invalid JSON") from None
        if not isinstance(items, list) or not items:
            raise UpstreamError(f"provider {self.id!r} returned no images")
        return [convert(self.id, await self._image_of(item), op.format) for item in items[:n]]

    async def translate(self, job: TranscriptionJob) -> Transcript:
        """Speech in any language as English text (OpenAI's /audio/translations), with its duration."""
        self._serves("audio_translations")
        return await self._post_audio(
            "/audio/translations", job, {"model": job.model, "response_format": "verbose_json"}
        )
