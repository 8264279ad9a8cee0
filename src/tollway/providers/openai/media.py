"""Images and audio on OpenAI-compatible upstreams, mixed into OpenAIProvider.

`flavor: openai` (default) speaks OpenAI's routes: images/generations, images/edits,
audio/speech, audio/transcriptions. `flavor: venice` uses Venice's native image routes
(image/generate|edit|upscale|background-remove) with their extra parameters; its audio routes
are OpenAI's. Images always come back as bytes: an upstream URL is fetched here (public
addresses only) and never shown to a client (DESIGN §6).
"""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from tollway import media_formats
from tollway.base.fetch import UrlFetcher
from tollway.errors import TollwayError
from tollway.providers import checks, http
from tollway.providers.base import UpstreamError
from tollway.providers.media import ImageJob, ImageOp, SpeechJob, Transcript, TranscriptionJob

MAX_UPSTREAM_IMAGE_BYTES = 64 * 1024 * 1024
_fetcher = UrlFetcher(max_bytes=MAX_UPSTREAM_IMAGE_BYTES, timeout_seconds=60)


def multipart_headers() -> dict[str, str]:
    # The pooled client defaults to JSON; naming the boundary makes httpx2 encode multipart with it.
    return {"content-type": f"multipart/form-data; boundary={secrets.token_hex(16)}"}


def convert(provider_id: str, data: bytes, fmt: str) -> bytes:
    """The upstream's image in the format the client asked for. It is decoded either way: bytes that are
    no readable image are the upstream's failure (502), never the client's 400 nor a broken file."""
    try:
        image = media_formats.decode(data, param="upstream")
    except TollwayError:
        raise checks.malformed(provider_id, "an image that is not a readable PNG, JPEG or WebP") from None
    if media_formats.sniff(data) == fmt:
        return data
    return media_formats.encode(image, fmt)


class OpenAIMedia:
    id: str
    _client: httpx2.AsyncClient
    flavor: str = "openai"

    async def _post(self, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            response = await self._client.post(path, **kwargs)
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if response.status_code != 200:
            raise http.status_failure(self.id, response)
        return response

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await http.post_json(self._client, self.id, path, body)

    async def _image_of(self, item: Any) -> bytes:
        if isinstance(item, str):  # Venice: a bare base64 string
            return checks.b64decode(self.id, item, "an image")
        if not isinstance(item, dict):
            raise UpstreamError(f"provider {self.id!r} sent an unexpected image item")
        if isinstance(item.get("b64_json"), str):
            return checks.b64decode(self.id, item["b64_json"], "an image")
        url = item.get("url")
        if isinstance(url, str) and url.startswith("data:"):
            return checks.b64decode(self.id, url.partition(",")[2], "an image")
        if isinstance(url, str):
            try:
                return await _fetcher.fetch(url, param="upstream")
            except TollwayError:  # an upstream's unusable URL is its failure, not the client's 400
                raise UpstreamError(
                    f"provider {self.id!r} sent an image URL that could not be fetched"
                ) from None
        raise UpstreamError(f"provider {self.id!r} sent an image with neither b64_json nor url")

    # -- images ---------------------------------------------------------------------------------

    async def generate_images(self, job: ImageJob) -> list[bytes]:
        if self.flavor == "venice":
            body: dict[str, Any] = {
                "model": job.model,
                "prompt": job.prompt,
                "width": job.width,
                "height": job.height,
                "steps": job.steps,
                "seed": job.seed,
                "format": job.format,
                "variants": job.n,
                "safe_mode": job.safe_mode,
                "hide_watermark": job.hide_watermark,
                "embed_exif_metadata": job.embed_exif,
                "return_binary": False,
            }
            for name, value in (
                ("negative_prompt", job.negative_prompt),
                ("style_preset", job.style),
                ("cfg_scale", job.cfg_scale),
            ):
                if value:
                    body[name] = value
            result = await self._post_json("/image/generate", body)
            items = result.get("images")
        else:
            body = {
                "model": job.model,
                "prompt": job.prompt,
                "n": job.n,
                "size": f"{job.width}x{job.height}",
                "response_format": "b64_json",
            }
            if job.quality and job.quality != "auto":
                body["quality"] = job.quality
            result = await self._post_json("/images/generations", body)
            items = result.get("data")
        if not isinstance(items, list) or not items:
            raise UpstreamError(f"provider {self.id!r} returned no images")
        return [convert(self.id, await self._image_of(item), job.format) for item in items]

    async def _venice_binary(self, path: str, body: dict[str, Any], fmt: str) -> bytes:
        response = await self._post(path, content=orjson.dumps(body))
        return convert(self.id, response.content, fmt)

    async def edit_image(self, op: ImageOp) -> bytes:
        if self.flavor == "venice":
            payload = {"prompt": op.prompt, "image": base64.b64encode(op.image).decode()}
            return await self._venice_binary("/image/edit", payload, op.format)
        response = await self._post(
            "/images/edits",
            headers=multipart_headers(),
            data={"model": op.model, "prompt": op.prompt, "response_format": "b64_json"},
            files={"image": ("image." + op.format, io.BytesIO(op.image), f"image/{op.format}")},
        )
        try:
            items = orjson.loads(response.content).get("data")
        except (orjson.JSONDecodeError, AttributeError):
            raise UpstreamError(f"provider {self.id!r} sent invalid JSON") from None
        if not isinstance(items, list) or not items:
            raise UpstreamError(f"provider {self.id!r} returned no image")
        return convert(self.id, await self._image_of(items[0]), op.format)

    async def upscale_image(self, op: ImageOp) -> bytes:
        if self.flavor != "venice":
            raise UpstreamError(f"provider {self.id!r} (OpenAI API) has no upscale route", retryable=False)
        payload = {"image": base64.b64encode(op.image).decode(), "scale": op.scale, "enhance": op.enhance}
        return await self._venice_binary("/image/upscale", payload, op.format)

    async def remove_background(self, op: ImageOp) -> bytes:
        if self.flavor != "venice":
            raise UpstreamError(
                f"provider {self.id!r} (OpenAI API) has no background-removal route", retryable=False
            )
        payload = {"image": base64.b64encode(op.image).decode()}
        return await self._venice_binary("/image/background-remove", payload, op.format)

    # -- audio ----------------------------------------------------------------------------------

    def voices(self, model: str) -> list[str]:
        return []  # the upstream validates its own voices

    def _speech_body(self, job: SpeechJob) -> dict[str, Any]:
        return {
            "model": job.model,
            "input": job.input,
            "voice": job.voice,
            "response_format": job.format,
            "speed": job.speed,
        }

    def _audio(self, response: httpx2.Response) -> None:
        # A 200 carrying JSON or text (an error some upstreams send with 200) is no audio to sell.
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.startswith("text/"):
            raise UpstreamError(f"provider {self.id!r} sent {content_type} where audio was expected")

    async def speech(self, job: SpeechJob) -> bytes:
        response = await self._post("/audio/speech", content=orjson.dumps(self._speech_body(job)))
        self._audio(response)
        if not response.content:
            raise UpstreamError(f"provider {self.id!r} sent no audio")
        return response.content

    async def speech_stream(self, job: SpeechJob) -> AsyncIterator[bytes]:
        body = self._speech_body(job)
        if self.flavor == "venice":
            body["streaming"] = True
        try:
            async with self._client.stream("POST", "/audio/speech", content=orjson.dumps(body)) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http.status_failure(self.id, response)
                self._audio(response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None

    async def transcribe(self, job: TranscriptionJob) -> Transcript:
        data: dict[str, Any] = {"model": job.model, "response_format": "verbose_json"}
        data["timestamp_granularities[]"] = ["segment", "word"] if job.words else ["segment"]
        if job.language:
            data["language"] = job.language
        return await self._post_audio("/audio/transcriptions", job, data)

    async def _post_audio(self, path: str, job: TranscriptionJob, data: dict[str, Any]) -> Transcript:
        """`job`'s audio posted to `path` (multipart, with `data` and its prompt): the answer's transcript."""
        if job.prompt:
            data["prompt"] = job.prompt
        response = await self._post(
            path,
            headers=multipart_headers(),
            data=data,
            files={"file": (job.filename, io.BytesIO(job.audio), "application/octet-stream")},
        )
        return self._transcript(response.content)

    def _transcript(self, content: bytes) -> Transcript:
        """A verbose_json transcription (or translation) answer."""
        try:
            result = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"provider {self.id!r} sent invalid JSON") from None
        if not isinstance(result, dict) or not isinstance(result.get("text"), str):
            raise UpstreamError(f"provider {self.id!r} sent an unexpected transcription")
        duration, segments, words = result.get("duration"), result.get("segments"), result.get("words")
        language = result.get("language")
        return Transcript(
            text=result["text"],
            language=language if isinstance(language, str) else None,
            # No usable duration: the caller bills the probed length (core/media/pipeline.py).
            duration=float(duration)
            if isinstance(duration, int | float) and not isinstance(duration, bool)
            else 0.0,
            segments=[s for s in segments if isinstance(s, dict)] if isinstance(segments, list) else [],
            words=[w for w in words if isinstance(w, dict)] if isinstance(words, list) else [],
        )
