"""The media routes' request bodies as /openapi.json documents them (api/spec.py).

The routes read JSON or multipart fields one by one (api/media/input.py: numbers may also come as
their decimal text, booleans as "true"/"false"); these models say what each field takes, from the same
constants the readers check against. The OpenAPI gate (tests/contract/test_openapi.py) sends bodies
generated from them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tollway import media_formats
from tollway.core.jobs.build import SEED_LIMIT, TASK_ASPECTS

FORMATS = list(media_formats.FORMATS)
IMAGE_INPUT = "The image: a multipart file, base64, a data URL, or a public http(s) URL (10 MB at most)."
PROMPT_MAX = 2500  # api/media/jobs.py and tasks.py
MODEL = "A model id or alias from GET /v1/models."


def _enum(values: Any, default: str | None, description: str | None = None) -> Any:
    """A string field that takes one of `values`; with no default, absent unless given."""
    names = list(values)

    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = names
        if default is None:
            schema.pop("default", None)

    return Field(default=default, json_schema_extra=extra, description=description)


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields the route does not know are ignored


class ImagesGenerationsRequest(_Body):
    model: str = Field(default="", description=MODEL + " Empty: the default image model.")
    prompt: str = Field(min_length=1, max_length=1500)
    size: str = Field(default="auto", pattern=r"^(auto|\d{2,5}x\d{2,5})$", description="WIDTHxHEIGHT or auto")
    resolution: str = _enum(media_formats.TIER_SIDE, None, "With size auto: the side of the square image.")
    n: int = Field(default=1, ge=1, le=4)
    quality: str = _enum(("auto", "low", "medium", "high", "hd", "standard"), "auto")
    response_format: str = _enum(("url", "b64_json"), "b64_json")
    output_format: str = _enum(FORMATS, "png")
    style: str = _enum(("vivid", "natural"), None, "Accepted and ignored.")


class ImageGenerateRequest(_Body):
    """Venice's image/generate."""

    model: str = Field(min_length=1, description=MODEL)
    prompt: str = Field(min_length=1, max_length=1500)
    negative_prompt: str = Field(default="", max_length=1500)
    width: int = Field(default=1024, gt=0, le=1280, multiple_of=8)
    height: int = Field(default=1024, gt=0, le=1280, multiple_of=8)
    steps: int = Field(default=20, gt=0, le=50)
    cfg_scale: float = Field(default=7.5, gt=0, le=20)
    seed: int = Field(default=0, ge=-SEED_LIMIT, le=SEED_LIMIT, description="0: a random seed")
    lora_strength: int = Field(default=0, ge=0, le=100)
    style_preset: str = _enum(media_formats.STYLES, None, "GET /v1/image/styles lists them.")
    format: str = _enum(FORMATS, "webp")
    return_binary: StrictBool = Field(
        default=False, description="true: the image itself (variants must be 1)"
    )
    variants: int = Field(default=1, ge=1, le=4)
    embed_exif_metadata: StrictBool = False
    safe_mode: StrictBool = True
    hide_watermark: StrictBool = False


class ImageEditRequest(_Body):
    model: str = Field(min_length=1, description=MODEL)
    prompt: str = Field(min_length=1, max_length=1500)
    image: str = Field(description=IMAGE_INPUT)


class ImageUpscaleRequest(_Body):
    model: str = Field(min_length=1, description=MODEL)
    image: str = Field(description=IMAGE_INPUT)
    scale: float = Field(default=2, ge=1, le=4, description="1 only with enhance")
    enhance: StrictBool = False
    enhanceCreativity: float = Field(default=0.5, ge=0, le=1)
    replication: float = Field(default=0.35, ge=0, le=1)
    enhancePrompt: str = Field(default="", max_length=1500)


class BackgroundRemoveRequest(_Body):
    model: str = Field(default="", description=MODEL + " Empty: the default background remover.")
    image: str = Field(description=IMAGE_INPUT)


class SpeechRequest(_Body):
    model: str = Field(min_length=1, description=MODEL)
    input: str = Field(min_length=1, max_length=media_formats.SPEECH_MAX_CHARS)
    voice: str = Field(default="af_sky", description="GET /v1/audio/voices lists them.")
    response_format: str = _enum(("mp3", "opus", "aac", "flac", "wav", "pcm"), "mp3")
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream: StrictBool = Field(default=False, description="true: audio sentence by sentence")
    stream_format: str = _enum(
        ("audio", "sse"),
        "audio",
        "sse: `speech.audio.delta` events (base64 audio), then `speech.audio.done`.",
    )


class TranscriptionRequest(_Body):
    """Multipart only: `file` is the audio."""

    model: str = Field(min_length=1, description=MODEL)
    file: str = Field(description="The audio, 25 MB at most.")
    language: str = Field(default="", pattern=r"^[a-z]{2,3}$", description="ISO-639-1, e.g. en")
    prompt: str = Field(default="", max_length=4000)
    response_format: str = _enum(("json", "text", "srt", "vtt", "verbose_json"), "json")
    timestamp_granularities: list[str] = Field(
        default=["segment"], json_schema_extra={"items": {"enum": ["word", "segment"]}}
    )
    stream: StrictBool = Field(
        default=False,
        description="true (json or text only): `transcript.text.delta` events, then `transcript.text.done`.",
    )


class AudioQuoteRequest(BaseModel):
    """audio/quote, as Venice's document has it (closed: an unknown field is a 400)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, description=MODEL)
    duration_seconds: int | str | None = Field(
        default=None,
        description="Seconds (music and sound effects; default 10): an integer or a numeric string.",
    )
    character_count: int | None = Field(
        default=None, gt=0, description="Characters (speech models: required)."
    )


class VideoRequest(_Body):
    """video/quote and video/queue."""

    model: str = Field(min_length=1, description=MODEL)
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX, description="Not needed by video/quote.")
    negative_prompt: str = Field(default="", max_length=PROMPT_MAX)
    duration: int = Field(default=5, ge=1, le=60, description="Seconds")
    resolution: str = _enum(media_formats.RESOLUTIONS, "720p")
    aspect_ratio: str = _enum(media_formats.ASPECT_RATIOS, "16:9")
    audio: StrictBool = False
    seed: int = Field(default=0, ge=0, le=SEED_LIMIT)
    image_url: str = Field(default="", description="A reference image. " + IMAGE_INPUT)


class AudioQueueRequest(_Body):
    """Music or a sound effect (`prompt`, `duration`), or long speech with a tts model (`input`)."""

    model: str = Field(min_length=1, description=MODEL)
    prompt: str = Field(default="", max_length=PROMPT_MAX)
    input: str = Field(default="", max_length=100_000, description="tts models: the text to speak")
    voice: str = ""
    duration: int = Field(default=10, ge=1, le=600, description="Seconds")
    seed: int = Field(default=0, ge=0, le=SEED_LIMIT)
    format: str = _enum(media_formats.AUDIO_FORMATS, "mp3")


class RetrieveRequest(_Body):
    queue_id: str = Field(min_length=1)
    model: str = Field(default="", description="If given, the job's model")


class TaskImageRequest(_Body):
    """The task API's images/generate."""

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    model: str = Field(default="", description=MODEL)
    mode: str = _enum(("text", "image"), "text", "image: edit `image_url`")
    aspect_ratio: str = _enum(TASK_ASPECTS, "1:1")
    resolution: str = _enum(media_formats.TIER_SIDE, "1K")
    num_images: int = Field(default=1, ge=1, le=4)
    quality: str = _enum(("standard", "hd"), "standard")
    output_format: str = _enum(("png", "jpeg"), "png")
    seed: int = Field(default=0, ge=0, le=SEED_LIMIT)
    image_url: str = Field(default="", description=IMAGE_INPUT)


class TaskVideoRequest(_Body):
    """The task API's videos/generate."""

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX)
    model_id: str = Field(default="", description=MODEL)
    duration: int = Field(default=5, ge=1, le=60, description="Seconds; default the model's shortest")
    resolution: str = _enum(media_formats.RESOLUTIONS, "720p")
    aspect_ratio: str = _enum(media_formats.ASPECT_RATIOS, "16:9")
    generate_audio: StrictBool = False
    seed: int = Field(default=0, ge=0, le=SEED_LIMIT)
    image_url: str = Field(default="", description=IMAGE_INPUT)


class ImagesEditsRequest(_Body):
    """OpenAI's images/edits, multipart: `image` (or `image[]`, one image) and an optional `mask` of its size."""

    model: str = Field(default="", description=MODEL + " Empty: the default edit (inpaint) model.")
    prompt: str = Field(min_length=1, max_length=1500)
    image: str = Field(description="The image to edit (png, jpeg or webp).")
    mask: str = Field(default="", description="PNG with alpha, the image's size: transparent = edit here.")
    n: int = Field(default=1, ge=1, le=1)
    size: str = Field(default="auto", description="auto, or the input image's own WIDTHxHEIGHT")
    response_format: str = _enum(("url", "b64_json"), "b64_json")
    output_format: str = _enum(FORMATS, "png")


class ImagesVariationsRequest(_Body):
    """OpenAI's images/variations, multipart. No engine here makes variations: answered 400."""

    model: str = Field(default="", description=MODEL)
    image: str = Field(description="The image to vary.")
    n: int = Field(default=1, ge=1, le=10)


class TranslationRequest(_Body):
    """OpenAI's audio/translations, multipart: audio in any language to English text."""

    model: str = Field(min_length=1, description=MODEL)
    file: str = Field(description="The audio, 25 MB at most.")
    prompt: str = Field(default="", max_length=4000)
    response_format: str = _enum(("json", "text", "srt", "vtt", "verbose_json"), "json")
