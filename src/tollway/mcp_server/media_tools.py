"""Images, speech, transcription, and the queued video and audio jobs: the /v1 media routes.

Media comes back as MCP image or audio content (base64), straight from the route's answer; nothing is
kept here. A finished video is a link (`download_url`, fetched with your key): MCP has no video content.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import AudioContent, ImageContent, TextContent
from pydantic import Field

from tollway.mcp_server.gateway import body, opened

ImageFormat = Literal["png", "jpeg", "webp"]
IMAGE = Field(
    min_length=1, description="The image: base64, a data URL, or a public http(s) URL (10 MB at most)."
)
Content = list[TextContent | ImageContent | AudioContent]


def _cost(headers: Any) -> TextContent:
    return TextContent(type="text", text=f"cost_usd: {headers.get('x-tollway-cost-usd', 'unknown')}")


def _image(data: bytes, content_type: str) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=content_type)


async def generate_image(
    ctx: Context,
    model: Annotated[str, Field(min_length=1, description="An image model id (list_models type=image).")],
    prompt: Annotated[str, Field(min_length=1, max_length=1500, description="What to draw.")],
    width: Annotated[int | None, Field(gt=0, le=1280, multiple_of=8, description="Pixels.")] = None,
    height: Annotated[int | None, Field(gt=0, le=1280, multiple_of=8, description="Pixels.")] = None,
    negative_prompt: Annotated[str | None, Field(max_length=1500, description="What to avoid.")] = None,
    format: Annotated[ImageFormat, Field(description="The image format.")] = "png",
    variants: Annotated[int, Field(ge=1, le=4, description="How many images.")] = 1,
    seed: Annotated[int | None, Field(description="0 or none: a random seed.")] = None,
) -> Content:
    """Generate images from a prompt (POST /v1/image/generate). Charged per image."""
    payload = body(
        model=model, prompt=prompt, width=width, height=height, negative_prompt=negative_prompt,
        format=format, variants=variants, seed=seed, return_binary=False,
    )  # fmt: skip
    async with opened(ctx) as gateway:
        response = await gateway.call("POST", "/v1/image/generate", json=payload)
    images = [_image(base64.b64decode(b64), f"image/{format}") for b64 in response.json().get("images", [])]
    return [*images, _cost(response.headers)]


async def _binary(ctx: Context, path: str, payload: dict[str, Any]) -> Content:
    async with opened(ctx) as gateway:
        response = await gateway.call("POST", path, json=payload)
    content_type = response.headers.get("content-type", "image/png").split(";")[0]
    return [_image(response.content, content_type), _cost(response.headers)]


async def edit_image(
    ctx: Context,
    model: Annotated[str, Field(min_length=1, description="An edit model id (list_models type=inpaint).")],
    prompt: Annotated[str, Field(min_length=1, max_length=1500, description="What to change.")],
    image: Annotated[str, IMAGE],
) -> Content:
    """Edit an image from a prompt (POST /v1/image/edit). Charged per image."""
    return await _binary(ctx, "/v1/image/edit", body(model=model, prompt=prompt, image=image))


async def upscale_image(
    ctx: Context,
    model: Annotated[str, Field(min_length=1, description="An upscale model id (list_models type=upscale).")],
    image: Annotated[str, IMAGE],
    scale: Annotated[float, Field(ge=1, le=4, description="How much larger (1 only with enhance).")] = 2,
    enhance: Annotated[bool, Field(description="Also enhance details.")] = False,
) -> Content:
    """Upscale and/or enhance an image (POST /v1/image/upscale). Charged per image."""
    return await _binary(
        ctx, "/v1/image/upscale", body(model=model, image=image, scale=scale, enhance=enhance)
    )


async def speech(
    ctx: Context,
    model: Annotated[str, Field(min_length=1, description="A speech model id (list_models type=tts).")],
    input: Annotated[str, Field(min_length=1, description="The text to speak.")],
    voice: Annotated[str | None, Field(description="A voice (GET /v1/audio/voices).")] = None,
    response_format: Annotated[Literal["mp3", "wav", "flac", "opus", "aac"], Field()] = "mp3",
    speed: Annotated[float | None, Field(ge=0.25, le=4.0)] = None,
) -> Content:
    """Speak a text (POST /v1/audio/speech), returned as audio. Charged per character."""
    payload = body(model=model, input=input, voice=voice, response_format=response_format, speed=speed)
    async with opened(ctx) as gateway:
        response = await gateway.call("POST", "/v1/audio/speech", json=payload)
    content_type = response.headers.get("content-type", f"audio/{response_format}").split(";")[0]
    audio = AudioContent(
        type="audio", data=base64.b64encode(response.content).decode(), mime_type=content_type
    )
    return [audio, _cost(response.headers)]


async def transcribe(
    ctx: Context,
    model: Annotated[
        str, Field(min_length=1, description="A speech-to-text model id (list_models type=stt).")
    ],
    audio_base64: Annotated[str, Field(min_length=1, description="The audio file, base64 (25 MB at most).")],
    filename: Annotated[str, Field(description="Its name; the extension tells the format.")] = "audio.wav",
    language: Annotated[str | None, Field(pattern=r"^[a-z]{2,3}$", description="ISO-639-1, e.g. en")] = None,
) -> dict[str, Any]:
    """Transcribe speech to text (POST /v1/audio/transcriptions). Charged per second of audio."""
    try:
        audio = base64.b64decode(audio_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError("`audio_base64` is not valid base64.") from exc
    form = body(model=model, language=language)
    async with opened(ctx) as gateway:
        response = await gateway.call(
            "POST",
            "/v1/audio/transcriptions",
            data=form,
            files={"file": (filename, audio, "application/octet-stream")},
        )
    return {"text": response.json().get("text"), "cost_usd": response.headers.get("x-tollway-cost-usd")}


Kind = Literal["video", "audio"]
KIND = Field(description="video (list_models type=video) or audio (music, sound effects, long speech).")


async def quote_job(
    ctx: Context,
    kind: Annotated[Kind, KIND],
    model: Annotated[str, Field(min_length=1, description="A video or audio model id.")],
    duration: Annotated[int | None, Field(ge=1, le=600, description="Seconds.")] = None,
    resolution: Annotated[str | None, Field(description="Video only: e.g. 720p.")] = None,
) -> dict[str, Any]:
    """Price a video or audio job before queueing it (POST /v1/{kind}/quote). Free."""
    fields = body(model=model, duration=duration, resolution=resolution)
    if kind == "audio" and duration is not None:
        fields = body(model=model, duration_seconds=fields.pop("duration"))
    async with opened(ctx) as gateway:
        return dict(await gateway.json("POST", f"/v1/{kind}/quote", json=fields))


async def queue_job(
    ctx: Context,
    kind: Annotated[Kind, KIND],
    model: Annotated[str, Field(min_length=1, description="A video or audio model id.")],
    prompt: Annotated[str, Field(max_length=2500, description="What to make.")] = "",
    duration: Annotated[int | None, Field(ge=1, le=600, description="Seconds.")] = None,
    resolution: Annotated[str | None, Field(description="Video only: e.g. 720p.")] = None,
    input: Annotated[str | None, Field(description="Audio tts models only: the text to speak.")] = None,
) -> dict[str, Any]:
    """Queue a video or audio job (POST /v1/{kind}/queue): its quote is held on your balance until it
    finishes (charged) or fails (released). Poll it with retrieve_job and its `queue_id`."""
    fields = body(model=model, prompt=prompt or None, duration=duration, resolution=resolution, input=input)
    async with opened(ctx) as gateway:
        return dict(await gateway.json("POST", f"/v1/{kind}/queue", json=fields))


async def retrieve_job(
    ctx: Context,
    kind: Annotated[Kind, KIND],
    queue_id: Annotated[str, Field(min_length=1, description="The queue_id queue_job returned.")],
    include_media: Annotated[
        bool, Field(description="Audio only: return the finished audio itself.")
    ] = False,
) -> Content | dict[str, Any]:
    """A queued job's status (POST /v1/{kind}/retrieve); once COMPLETED, its `download_url` (GET it with
    your key) and, for audio with include_media, the audio itself."""
    async with opened(ctx) as gateway:
        view = dict(await gateway.json("POST", f"/v1/{kind}/retrieve", json={"queue_id": queue_id}))
        if not (include_media and kind == "audio" and view.get("status") == "COMPLETED"):
            return view
        media = await gateway.call("GET", str(view["download_path"]))
    data = base64.b64encode(media.content).decode()
    mime = media.headers.get("content-type", "audio/mpeg").split(";")[0]
    return [AudioContent(type="audio", data=data, mime_type=mime), TextContent(type="text", text=str(view))]


TOOLS = (generate_image, edit_image, upscale_image, speech, transcribe, quote_job, queue_job, retrieve_job)
