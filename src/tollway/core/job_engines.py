"""How a job runs on an engine that answers at once: the local engines, and image upstreams.

Route model ids of the `local` provider (catalog `routes[].model`): `procedural-video`,
`procedural-music`, `procedural-sfx`, `procedural` (images; `procedural-edit` for an input image),
`tts` / `tts-espeak` (long speech: sentence by sentence through the embedded TTS engine).
Every blocking call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from tollway.core.job_runner import Output
from tollway.core.job_store import JobRow
from tollway.core.media_store import MediaStore
from tollway.providers.base import Provider, UpstreamError
from tollway.providers.local import audio_gen, ffmpeg, images, video
from tollway.providers.local.speech import sentences
from tollway.providers.media import ImageJob, ImageOp, MediaProvider

VIDEO_TYPE = "video/mp4"
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _input_image(job: JobRow, store: MediaStore) -> bytes | None:
    media_id = job.params.get("input_media")
    if not isinstance(media_id, str):
        return None
    entry = store.get(media_id, owner=job.account_id)
    if entry is None:
        raise UpstreamError("the job's input image expired before the job ran", retryable=False)
    return entry.path.read_bytes()


async def run_local(
    provider: Provider, engine: str, job: JobRow, store: MediaStore, progress: Callable[[float], None]
) -> Output:
    p = job.params
    if job.kind == "video":
        if engine != "procedural-video":
            raise UpstreamError(f"no embedded video engine {engine!r}", retryable=False)
        image = await asyncio.to_thread(_input_image, job, store)
        spec = video.VideoSpec(
            prompt=str(p["prompt"]),
            seconds=int(p["seconds"]),
            resolution=str(p["resolution"]),
            aspect_ratio=str(p["aspect_ratio"]),
            audio=bool(p.get("audio")),
            seed=int(p.get("seed", 0)),
            image=image,
        )
        data = await asyncio.to_thread(video.render_mp4, spec, progress)
        return Output([(data, VIDEO_TYPE)], float(spec.seconds))
    if job.kind == "audio":
        return await _local_audio(provider, engine, p)
    return await _local_images(provider, engine, job, store)


async def _local_audio(provider: Provider, engine: str, p: dict[str, Any]) -> Output:
    fmt = str(p.get("format") or "mp3")
    _, content_type = ffmpeg.AUDIO_FORMATS[fmt]
    if engine in ("procedural-music", "procedural-sfx"):
        spec = audio_gen.AudioSpec(str(p["prompt"]), float(p["seconds"]), int(p.get("seed", 0)))
        synth = audio_gen.music if engine == "procedural-music" else audio_gen.sound_effect

        def render() -> bytes:
            return ffmpeg.encode_pcm(synth(spec), spec.sample_rate, fmt)

        return Output([(await asyncio.to_thread(render), content_type)], spec.seconds)
    if engine in ("tts", "tts-espeak"):
        speaker = provider._speaker(engine)  # type: ignore[attr-defined]
        text = str(p["input"])

        def speak() -> bytes:
            parts = [speaker.speak(sentence) for sentence in sentences(text)]
            pcm = b"".join(part.audio for part in parts)
            return ffmpeg.encode_pcm(pcm, parts[0].sample_rate, fmt, float(p.get("speed", 1.0)))

        return Output([(await asyncio.to_thread(speak), content_type)])
    raise UpstreamError(f"no embedded audio engine {engine!r}", retryable=False)


async def _local_images(provider: Provider, engine: str, job: JobRow, store: MediaStore) -> Output:
    p = job.params
    fmt = str(p.get("format") or "png")
    source = await asyncio.to_thread(_input_image, job, store)
    if source is not None and engine in ("procedural", "procedural-edit"):

        def edit() -> list[bytes]:
            decoded = images.decode(source)
            return [
                bytes(images.encode(images.edit(decoded, str(p["prompt"])), fmt)) for _ in range(int(p["n"]))
            ]

        outputs = await asyncio.to_thread(edit)
    else:
        if not isinstance(provider, MediaProvider):
            raise UpstreamError(f"provider {provider.id!r} does not serve images", retryable=False)
        outputs = await provider.generate_images(_image_job(engine, p))
    return Output([(data, IMAGE_TYPES[fmt]) for data in outputs])


def _image_job(engine: str, p: dict[str, Any]) -> ImageJob:
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
    provider: Provider, upstream_model: str, job: JobRow, store: MediaStore
) -> Output:
    """An image upstream answers synchronously: generate (or edit the input image) and keep the result."""
    if not isinstance(provider, MediaProvider):
        raise UpstreamError(f"provider {provider.id!r} does not serve images", retryable=False)
    p = job.params
    fmt = str(p.get("format") or "png")
    source = await asyncio.to_thread(_input_image, job, store)
    if source is not None:
        out = await provider.edit_image(ImageOp(upstream_model, source, fmt, prompt=str(p["prompt"])))
        return Output([(out, IMAGE_TYPES[fmt])])
    outputs = await provider.generate_images(dataclasses.replace(_image_job(upstream_model, p)))
    return Output([(data, IMAGE_TYPES[fmt]) for data in outputs[: int(p["n"])]])
