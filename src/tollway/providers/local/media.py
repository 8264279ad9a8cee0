"""The `local` provider's media engines (images, speech, transcription), mixed into LocalProvider.

Each engine is created on first use and kept for the process; every blocking call runs on a worker
thread, never on the event loop. Route model ids (catalog `routes[].model`):
`procedural` (generate), `procedural-edit`, `lanczos` (upscale), `border-flood` (background
removal), `tts` (Piper, else espeak-ng), `tts-espeak` (espeak-ng only), `whisper-tiny-en`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tollway import media_formats
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import UpstreamError
from tollway.providers.local import ffmpeg, images
from tollway.providers.local.speech import Pcm, Speaker, Unspeakable, load_speaker, sentences
from tollway.providers.local.transcribe import WhisperTranscriber
from tollway.providers.media import ImageJob, ImageOp, SpeechJob, Transcript, TranscriptionJob

# Venice's 54 Kokoro voice ids (seed 002 §8) and OpenAI's: accepted for compatibility and all
# rendered with the one packaged voice; GET audio/voices says so.
VENICE_VOICES = [
    "af_alloy",
    "af_aoede",
    "af_bella",
    "af_heart",
    "af_jadzia",
    "af_jessica",
    "af_kore",
    "af_nicole",
    "af_nova",
    "af_river",
    "af_sarah",
    "af_sky",
    "am_adam",
    "am_echo",
    "am_eric",
    "am_fenrir",
    "am_liam",
    "am_michael",
    "am_onyx",
    "am_puck",
    "am_santa",
    "bf_alice",
    "bf_emma",
    "bf_lily",
    "bm_daniel",
    "bm_fable",
    "bm_george",
    "bm_lewis",
    "zf_xiaobei",
    "zf_xiaoni",
    "zf_xiaoxiao",
    "zf_xiaoyi",
    "zm_yunjian",
    "zm_yunxi",
    "zm_yunxia",
    "zm_yunyang",
    "ff_siwis",
    "hf_alpha",
    "hf_beta",
    "hm_omega",
    "hm_psi",
    "if_sara",
    "im_nicola",
    "jf_alpha",
    "jf_gongitsune",
    "jf_nezumi",
    "jf_tebukuro",
    "jm_kumo",
    "pf_dora",
    "pm_alex",
    "pm_santa",
    "ef_dora",
    "em_alex",
    "em_santa",
]
OPENAI_VOICES = [
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
]
NATIVE_VOICES = ["en_US-joe-medium", "en-us"]
LOCAL_VOICES = [*NATIVE_VOICES, *VENICE_VOICES, *OPENAI_VOICES]


class LocalMedia:
    """Media methods of the local provider. State lives on the instance, created lazily."""

    id: str
    _speakers: dict[str, Speaker]
    _transcriber: WhisperTranscriber | None

    def _media_state(self) -> None:
        if not hasattr(self, "_speakers"):
            self._speakers = {}
            self._transcriber = None

    # -- images ---------------------------------------------------------------------------------

    async def generate_images(self, job: ImageJob) -> list[bytes]:
        if job.model != "procedural":
            raise UpstreamError(f"no embedded image model {job.model!r}", retryable=False)

        def run() -> list[bytes]:
            out = []
            for variant in range(job.n):
                request = images.Generation(
                    prompt=job.prompt,
                    width=job.width,
                    height=job.height,
                    seed=job.seed + variant,  # variants differ; each is still reproducible
                    negative_prompt=job.negative_prompt,
                    style=job.style,
                    steps=job.steps,
                    cfg_scale=job.cfg_scale,
                )
                exif = (
                    f"local-procedural seed={job.seed + variant} prompt={job.prompt}"
                    if job.embed_exif
                    else None
                )
                out.append(media_formats.encode(images.generate(request), job.format, exif_text=exif))
            return out

        return await asyncio.to_thread(run)

    async def _image_op(self, op: ImageOp, expected: str) -> bytes:
        if op.model != expected:
            raise UpstreamError(f"no embedded image engine {op.model!r} for this operation", retryable=False)

        def run() -> bytes:
            source = media_formats.decode(op.image)
            if expected == "procedural-edit":
                result = images.edit(source, op.prompt)
            elif expected == "lanczos":
                result = images.upscale(source, op.scale, enhance=op.enhance)
            else:
                result = images.remove_background(source)
            return bytes(media_formats.encode(result, op.format))

        return await asyncio.to_thread(run)

    async def edit_image(self, op: ImageOp) -> bytes:
        return await self._image_op(op, "procedural-edit")

    async def upscale_image(self, op: ImageOp) -> bytes:
        return await self._image_op(op, "lanczos")

    async def remove_background(self, op: ImageOp) -> bytes:
        return await self._image_op(op, "border-flood")

    # -- speech ---------------------------------------------------------------------------------

    def speaker(self, model: str) -> Speaker:
        self._media_state()
        prefer = {"tts": "auto", "tts-espeak": "espeak"}.get(model)
        if prefer is None:
            raise UpstreamError(f"no embedded speech model {model!r}", retryable=False)
        if model not in self._speakers:
            self._speakers[model] = load_speaker(prefer)
        return self._speakers[model]

    def voices(self, model: str) -> list[str]:
        return list(LOCAL_VOICES)

    async def speech(self, job: SpeechJob) -> bytes:
        speaker = self.speaker(job.model)

        def run() -> bytes:
            pcm = speaker.speak(job.input)
            return ffmpeg.encode_pcm(pcm.audio, pcm.sample_rate, job.format, job.speed)

        return await asyncio.to_thread(run)

    async def speech_stream(self, job: SpeechJob) -> AsyncIterator[bytes]:
        """Sentence by sentence: each sentence is synthesised, then fed to one running encoder."""
        speaker = self.speaker(job.model)
        parts = sentences(job.input)
        first: Pcm | None = None
        while first is None:  # the first sentence the voice can speak (none at all is a 400)
            sentence, parts = parts[0], parts[1:]
            try:
                first = await asyncio.to_thread(speaker.speak, sentence)
            except Unspeakable:
                if not parts:
                    raise

        async def pcm() -> AsyncIterator[bytes]:
            assert first is not None
            yield first.audio
            for sentence in parts:
                try:
                    spoken = await asyncio.to_thread(speaker.speak, sentence)
                except Unspeakable:
                    continue  # silence for it: the stream goes on
                yield spoken.audio

        async for chunk in ffmpeg.encode_stream(pcm(), first.sample_rate, job.format, job.speed):
            yield chunk

    # -- transcription --------------------------------------------------------------------------

    async def transcribe(self, job: TranscriptionJob) -> Transcript:
        if job.model != "whisper-tiny-en":
            raise UpstreamError(f"no embedded transcription model {job.model!r}", retryable=False)
        self._media_state()
        if self._transcriber is None:
            self._transcriber = WhisperTranscriber()
        transcriber = self._transcriber
        try:
            return await asyncio.to_thread(
                transcriber.transcribe, job.audio, language=job.language, words=job.words, prompt=job.prompt
            )
        except ValueError:
            raise TollwayError(
                ErrorCode.VALIDATION, "The audio file could not be decoded.", param="file"
            ) from None

    async def close_media(self) -> None:
        self._media_state()
        for speaker in self._speakers.values():
            await asyncio.to_thread(speaker.close)
