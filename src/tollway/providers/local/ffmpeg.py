"""Audio encoding and probing with the static ffmpeg that `imageio-ffmpeg` ships (no apt needed).

ffmpeg is a separate program (its build includes GPL parts), run as a subprocess.
"""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tollway.media_formats import AUDIO_FORMATS
from tollway.providers.base import UpstreamError


@functools.cache
def ffmpeg_exe() -> str:
    """imageio-ffmpeg's binary, else one on PATH."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise UpstreamError("ffmpeg is not available (install imageio-ffmpeg)", retryable=False) from None
        return found


def atempo_chain(speed: float) -> str:
    """ffmpeg's atempo takes 0.5–2.0 per stage: 0.25 = 0.5·0.5, 4 = 2·2."""
    stages: list[float] = []
    while speed > 2.0:
        stages.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        stages.append(0.5)
        speed /= 0.5
    stages.append(speed)
    return ",".join(f"atempo={s:.6f}" for s in stages)


def _input_args(sample_rate: int, speed: float) -> list[str]:
    args = ["-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1"]
    args += ["-i", "pipe:0"]
    if abs(speed - 1.0) > 1e-6:
        args += ["-filter:a", atempo_chain(speed)]
    return args


def encode_pcm(pcm: bytes, sample_rate: int, fmt: str, speed: float = 1.0) -> bytes:
    """16-bit mono PCM → `fmt` (blocking: run in a thread)."""
    codec, _ = AUDIO_FORMATS[fmt]
    # A seekable output file, not a pipe: ffmpeg then writes complete headers (WAV sizes, FLAC's
    # STREAMINFO sample count), so players and decoders see the true duration.
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / f"out.{fmt}"
        completed = subprocess.run(
            [ffmpeg_exe(), *_input_args(sample_rate, speed), *codec, str(target)],
            input=pcm,
            capture_output=True,
            check=False,
            timeout=120,
        )
        if completed.returncode != 0:
            raise UpstreamError("ffmpeg failed to encode the audio", retryable=False)
        return target.read_bytes()


async def encode_stream(
    pcm_parts: AsyncIterator[bytes], sample_rate: int, fmt: str, speed: float = 1.0
) -> AsyncIterator[bytes]:
    """One ffmpeg process fed PCM part by part (sentence by sentence), its output relayed as it
    comes: the result is one valid file in every format, not a concatenation of files."""
    codec, _ = AUDIO_FORMATS[fmt]
    process = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        *_input_args(sample_rate, speed),
        *codec,
        "-flush_packets",
        "1",
        "pipe:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def feed() -> None:
        try:
            async for part in pcm_parts:
                stdin.write(part)
                await stdin.drain()
        finally:
            stdin.close()

    feeder = asyncio.create_task(feed())
    try:
        while chunk := await stdout.read(16384):
            yield chunk
        await feeder  # surfaces a synthesis failure
    finally:
        if not feeder.done():
            feeder.cancel()
        if process.returncode is None:
            process.kill()
        await process.wait()


_DURATION = re.compile(rb"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def probe_seconds(data: bytes) -> float | None:
    """The media's duration from ffmpeg's header parse (blocking), or None when it cannot tell."""
    with tempfile.NamedTemporaryFile(suffix=".media") as fh:
        fh.write(data)
        fh.flush()
        completed = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-i", fh.name],
            capture_output=True,
            check=False,
            timeout=30,
        )
    match = _DURATION.search(completed.stderr)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def decode_to_pcm(data: bytes, sample_rate: int = 16000) -> bytes:
    """Any audio ffmpeg reads → 16-bit mono PCM at `sample_rate` (blocking)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input"
        source.write_bytes(data)
        completed = subprocess.run(
            [
                *(ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(source)),
                *("-f", "s16le", "-ac", "1", "-ar", str(sample_rate), "pipe:1"),
            ],
            capture_output=True,
            check=False,
            timeout=300,
        )
    if completed.returncode != 0:
        raise ValueError("ffmpeg could not decode the audio")
    return completed.stdout
