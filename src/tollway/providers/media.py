"""The media side of the provider interface: images, speech, transcription.

Requests arrive validated (core/media.py) as small jobs; `model` is the route's upstream model id.
Image bytes in and out are already encoded (png/jpeg/webp): providers never hand out URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


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
