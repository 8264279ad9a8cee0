"""The media side of the provider interface: images, speech, transcription.

Requests arrive validated (core/media/pipeline.py) as small jobs; `model` is the route's upstream model id.
Image bytes in and out are already encoded (png/jpeg/webp): providers never hand out URLs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tollway.providers.base import Provider, UpstreamError

IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class ImageJob:
    model: str
    prompt: str
    width: int
    height: int
    format: str  # png | jpeg | webp
    n: int = 1
    seed: int = 0
    negative_prompt: str = ""
    style: str | None = None
    steps: int = 20
    cfg_scale: float | None = None
    quality: str | None = None
    embed_exif: bool = False
    safe_mode: bool = False
    hide_watermark: bool = False


@dataclass(frozen=True, slots=True)
class ImageOp:
    """An edit, upscale or background removal of one input image."""

    model: str
    image: bytes
    format: str
    prompt: str = ""
    scale: float = 2.0
    enhance: bool = False


@dataclass(frozen=True, slots=True)
class SpeechJob:
    model: str
    input: str
    voice: str
    format: str
    speed: float = 1.0


@dataclass(slots=True)
class Transcript:
    text: str
    language: str | None
    duration: float  # seconds of audio: what transcription is billed by
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TranscriptionJob:
    model: str
    audio: bytes
    filename: str
    language: str | None = None
    prompt: str | None = None
    words: bool = False


@runtime_checkable
class MediaProvider(Protocol):
    async def generate_images(self, job: ImageJob) -> list[bytes]: ...

    async def edit_image(self, op: ImageOp) -> bytes: ...

    async def upscale_image(self, op: ImageOp) -> bytes: ...

    async def remove_background(self, op: ImageOp) -> bytes: ...

    async def speech(self, job: SpeechJob) -> bytes: ...

    def speech_stream(self, job: SpeechJob) -> AsyncIterator[bytes]: ...

    def voices(self, model: str) -> list[str]:
        """The voice ids this provider renders for `model` (empty: any the upstream accepts)."""
        ...

    async def transcribe(self, job: TranscriptionJob) -> Transcript: ...


@dataclass(slots=True)
class Output:
    """What a finished job produced: one or more media files, and what the upstream reports."""

    items: list[tuple[bytes, str]]
    duration: float | None = None


# Reads a job's input image (None: the job has none) when the engine needs it; raises UpstreamError
# when it expired before the job ran.
InputImage = Callable[[], Awaitable[bytes | None]]


@runtime_checkable
class JobProvider(Protocol):
    """A provider that renders a whole async job at once (the `runs_jobs` capability, providers/registry.py)."""

    async def run_job(
        self,
        engine: str,
        kind: str,
        params: dict[str, Any],
        input_image: InputImage,
        progress: Callable[[float], None],
    ) -> Output:
        """Render the job (`kind` video | audio | image) on `engine`, the route's upstream model."""
        ...


def image_job(engine: str, p: dict[str, Any]) -> ImageJob:
    """An image job's parameters (core/jobs) as the ImageJob a media provider renders."""
    return ImageJob(
        model=engine,
        prompt=str(p["prompt"]),
        width=int(p["width"]),
        height=int(p["height"]),
        format=str(p.get("format") or "png"),
        n=int(p["n"]),
        seed=int(p.get("seed", 0)),
        negative_prompt=str(p.get("negative_prompt") or ""),
        quality=p.get("quality"),
    )


async def run_image_upstream(
    provider: Provider, upstream_model: str, p: dict[str, Any], input_image: InputImage
) -> Output:
    """An image upstream answers synchronously: generate, or edit the input image."""
    if not isinstance(provider, MediaProvider):
        raise UpstreamError(f"provider {provider.id!r} does not serve images", retryable=False)
    fmt = str(p.get("format") or "png")
    image = await input_image()
    if image is not None:
        out = await provider.edit_image(ImageOp(upstream_model, image, fmt, prompt=str(p["prompt"])))
        return Output([(out, IMAGE_TYPES[fmt])])
    outputs = await provider.generate_images(dataclasses.replace(image_job(upstream_model, p)))
    return Output([(data, IMAGE_TYPES[fmt]) for data in outputs[: int(p["n"])]])
