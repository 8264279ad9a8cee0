"""The OpenAI-compatible media adapter (providers/openai/media.py) against a mock upstream."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx2
import pytest
from PIL import Image

from tollway.base.config import ProviderConfig
from tollway.providers.base import UpstreamError
from tollway.providers.media import ImageJob, ImageOp, SpeechJob, TranscriptionJob
from tollway.providers.openai import OpenAIProvider


def _png(colour: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def _provider(handler: Any, flavor: str = "openai") -> tuple[OpenAIProvider, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        request.read()
        seen.append(request)
        response: httpx2.Response = handler(request)
        return response

    config = ProviderConfig(id="up", kind="openai", base_url="http://up.test/v1", flavor=flavor)  # type: ignore[arg-type]
    provider = OpenAIProvider(config, timeout=5)
    provider._client = httpx2.AsyncClient(
        base_url="http://up.test/v1",
        headers={"content-type": "application/json"},
        transport=httpx2.MockTransport(record),
    )
    return provider, seen


async def test_openai_images_are_asked_as_b64_and_converted_to_the_asked_format() -> None:
    provider, seen = _provider(
        lambda r: httpx2.Response(
            200, json={"created": 1, "data": [{"b64_json": base64.b64encode(_png()).decode()}]}
        )
    )
    job = ImageJob(model="gpt-image-1", prompt="x", width=1024, height=1536, format="webp", quality="high")
    [image] = await provider.generate_images(job)
    assert image[:4] == b"RIFF" and image[8:12] == b"WEBP"
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/images/generations"
    assert body == {
        "model": "gpt-image-1",
        "prompt": "x",
        "n": 1,
        "size": "1024x1536",
        "response_format": "b64_json",
        "quality": "high",
    }


async def test_venice_flavour_uses_the_native_routes() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/v1/image/generate":
            return httpx2.Response(
                200, json={"id": "g", "images": [base64.b64encode(_png()).decode()], "timing": {}}
            )
        return httpx2.Response(200, content=_png((200, 0, 0)), headers={"content-type": "image/png"})

    provider, seen = _provider(handler, flavor="venice")
    job = ImageJob(
        model="hidream", prompt="x", width=512, height=512, format="png", steps=8, negative_prompt="rain"
    )
    [image] = await provider.generate_images(job)
    assert image.startswith(b"\x89PNG")
    sent = json.loads(seen[0].content)
    assert sent["negative_prompt"] == "rain" and sent["steps"] == 8 and sent["return_binary"] is False
    upscaled = await provider.upscale_image(ImageOp(model="upscaler", image=_png(), format="png", scale=4))
    assert upscaled.startswith(b"\x89PNG") and seen[1].url.path == "/v1/image/upscale"
    await provider.remove_background(ImageOp(model="bg", image=_png(), format="png"))
    assert seen[2].url.path == "/v1/image/background-remove"


async def test_openai_flavour_has_no_upscale() -> None:
    provider, _ = _provider(lambda r: httpx2.Response(200))
    with pytest.raises(UpstreamError) as caught:
        await provider.upscale_image(ImageOp(model="m", image=_png(), format="png"))
    assert not caught.value.retryable


async def test_speech_and_transcription_shapes() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/audio/speech"):
            return httpx2.Response(200, content=b"ID3audio", headers={"content-type": "audio/mpeg"})
        return httpx2.Response(
            200,
            json={
                "text": "hello",
                "language": "english",
                "duration": 2.5,
                "segments": [],
                "words": [{"word": "hello", "start": 0, "end": 0.4}],
            },
        )

    provider, seen = _provider(handler)
    audio = await provider.speech(
        SpeechJob(model="tts-1", input="hello", voice="alloy", format="mp3", speed=1.25)
    )
    assert audio == b"ID3audio"
    assert json.loads(seen[0].content) == {
        "model": "tts-1",
        "input": "hello",
        "voice": "alloy",
        "response_format": "mp3",
        "speed": 1.25,
    }
    transcript = await provider.transcribe(
        TranscriptionJob(model="whisper-1", audio=b"RIFF....", filename="a.wav", words=True)
    )
    assert (transcript.text, transcript.duration, len(transcript.words)) == ("hello", 2.5, 1)
    multipart = seen[1]
    assert multipart.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="timestamp_granularities[]"' in multipart.content and b"verbose_json" in multipart.content


async def test_upstream_failures_are_upstream_errors() -> None:
    provider, _ = _provider(lambda r: httpx2.Response(503))
    with pytest.raises(UpstreamError) as caught:
        await provider.speech(SpeechJob(model="tts-1", input="x", voice="alloy", format="mp3"))
    assert caught.value.retryable and caught.value.status == 503
