"""How an async job runs on the embedded engines: `LocalProvider.run_job` (the `runs_jobs` capability).

Route model ids of the `local` provider (catalog `routes[].model`): `procedural-video`,
`procedural-music`, `procedural-sfx`, `procedural` (images; `procedural-edit` for an input image),
`tts` / `tts-espeak` (long speech: sentence by sentence through the embedded TTS engine).
Every blocking call runs on a worker thread. Image upstreams run jobs through providers/media.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway import media_formats
from tollway.providers.base import UpstreamError
from tollway.providers.local import ffmpeg, images, video
from tollway.providers.local.speech import sentences, speak_all
from tollway.providers.media import IMAGE_TYPES, InputImage, Output, image_job

if TYPE_CHECKING:
    from tollway.providers.local.media import LocalMedia

VIDEO_TYPE = "video/mp4"


async def run_local(
    provider: LocalMedia,
    engine: str,
    kind: str,
    p: dict[str, Any],
    input_image: InputImage,
    progress: Callable[[float], None],
) -> Output:
    if kind == "video":
        if engine != "procedural-video":
            raise UpstreamError(f"no embedded video engine {engine!r}", retryable=False)
        image = await input_image()
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
    if kind == "audio":
        return await _local_audio(provider, engine, p)
    return await _local_images(provider, engine, p, input_image)


async def _local_audio(provider: LocalMedia, engine: str, p: dict[str, Any]) -> Output:
    fmt = str(p.get("format") or "mp3")
    _, content_type = media_formats.AUDIO_FORMATS[fmt]
    if engine in ("procedural-music", "procedural-sfx"):
        from tollway.providers.local import audio_gen  # numpy: loaded by the first procedural sound only

        spec = audio_gen.AudioSpec(str(p["prompt"]), float(p["seconds"]), int(p.get("seed", 0)))
        synth = audio_gen.music if engine == "procedural-music" else audio_gen.sound_effect

        def render() -> bytes:
            return ffmpeg.encode_pcm(synth(spec), spec.sample_rate, fmt)

        return Output([(await asyncio.to_thread(render), content_type)], spec.seconds)
    if engine in ("tts", "tts-espeak"):
        speaker = provider.speaker(engine)
        text = str(p["input"])

        def speak() -> bytes:
            parts = speak_all(speaker, sentences(text))
            pcm = b"".join(part.audio for part in parts)
            return ffmpeg.encode_pcm(pcm, parts[0].sample_rate, fmt, float(p.get("speed", 1.0)))

        return Output([(await asyncio.to_thread(speak), content_type)])
    raise UpstreamError(f"no embedded audio engine {engine!r}", retryable=False)


async def _local_images(
    provider: LocalMedia, engine: str, p: dict[str, Any], input_image: InputImage
) -> Output:
    fmt = str(p.get("format") or "png")
    source = await input_image()
    if source is not None and engine in ("procedural", "procedural-edit"):

        def edit() -> list[bytes]:
            decoded = media_formats.decode(source)
            return [
                bytes(media_formats.encode(images.edit(decoded, str(p["prompt"])), fmt))
                for _ in range(int(p["n"]))
            ]

        outputs = await asyncio.to_thread(edit)
    else:
        outputs = await provider.generate_images(image_job(engine, p))
    return Output([(data, IMAGE_TYPES[fmt]) for data in outputs])
