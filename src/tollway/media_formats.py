"""The public media vocabulary: the formats, resolutions and aspect ratios clients may ask for.

What the API validates and what every engine renders share these tables, so the HTTP adapters
(api/media/images.py, api/media/jobs.py, api/media/tasks.py) never reach into an engine: image formats and their
codec (Pillow; decoding guards against non-images, broken files and decompression bombs), video
resolutions and frame sizes, and audio formats with the ffmpeg arguments that produce them.
"""

from __future__ import annotations

import io

from PIL import Image

from tollway.errors import ErrorCode, TollwayError

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_TO_FORMAT = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}
MAX_INPUT_PIXELS = 7680 * 4320  # Venice's edit bound; also guards Pillow against decompression bombs
RESOLUTIONS = {"360p": 360, "480p": 480, "540p": 540, "720p": 720, "1080p": 1080}
ASPECT_RATIOS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "21:9": (21, 9),
}

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # Venice: image URLs must be under 10 MB; uploads get the same cap
# Image resolution tiers (Venice, seed 001) → the long side in pixels; sizes the image routes accept.
TIER_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
MAX_SIDE = 4096
MIN_SIDE = 64
# Image styles (Venice image/styles).
STYLES = [
    "3D Model",
    "Analog Film",
    "Anime",
    "Cinematic",
    "Comic Book",
    "Craft Clay",
    "Digital Art",
    "Enhance",
    "Fantasy Art",
    "Isometric Style",
    "Line Art",
    "Lowpoly",
    "Neon Punk",
    "Origami",
    "Photographic",
    "Pixel Art",
    "Texture",
]
# The longest `input` of a speech request, in characters (OpenAI's limit).
SPEECH_MAX_CHARS = 4096


def speakable(text: str) -> bool:
    """Whether a speech engine has something to say: a letter or a digit. Piper crashes on a text it
    turns into no sound at all ("." or a control character)."""
    return any(c.isalnum() for c in text)


def check_speakable(text: str, param: str) -> None:
    if not speakable(text):
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`{param}` has nothing to speak: it needs a letter or a digit.",
            param=param,
        )


# OpenAI's speech formats → (ffmpeg muxer and codec arguments, Content-Type).
AUDIO_FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-f", "mp3", "-c:a", "libmp3lame", "-b:a", "64k"], "audio/mpeg"),
    # Opus in Ogg is registered as audio/ogg (RFC 7845); audio/opus names the RTP payload.
    "opus": (["-f", "ogg", "-c:a", "libopus", "-b:a", "32k", "-ar", "48000"], "audio/ogg"),
    "aac": (["-f", "adts", "-c:a", "aac", "-b:a", "64k"], "audio/aac"),
    "flac": (["-f", "flac", "-c:a", "flac"], "audio/flac"),
    "wav": (["-f", "wav", "-c:a", "pcm_s16le"], "audio/wav"),
    # Raw 16-bit little-endian mono at 24 kHz: what OpenAI's `pcm` is, so clients can assume it.
    "pcm": (["-f", "s16le", "-c:a", "pcm_s16le", "-ar", "24000"], "audio/pcm"),
}


def encode(image: Image.Image, fmt: str, *, exif_text: str | None = None) -> bytes:
    """PNG/JPEG/WebP bytes. JPEG has no alpha: transparent pixels are flattened on white."""
    out = io.BytesIO()
    kwargs: dict[str, object] = {}
    if fmt == "jpeg":
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        kwargs["quality"] = 92
    elif fmt == "webp":
        kwargs["quality"] = 90
    if exif_text:
        exif = Image.Exif()
        exif[0x010E] = exif_text[:1000]  # ImageDescription
        kwargs["exif"] = exif
    image.save(out, FORMATS[fmt], **kwargs)
    return out.getvalue()


def decode(data: bytes, *, param: str = "image") -> Image.Image:
    """Bytes → image: 400 INVALID_IMAGE_FORMAT for a non-image, 400 CORRUPTED_IMAGE for a broken one."""
    kind = sniff(data)
    if kind is None:
        raise TollwayError(ErrorCode.INVALID_IMAGE_FORMAT, param=param)
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_INPUT_PIXELS:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"The image has more than {MAX_INPUT_PIXELS} pixels.",
                param=param,
            )
        image.load()
    except TollwayError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise TollwayError(ErrorCode.CORRUPTED_IMAGE, param=param) from None
    return image


def sniff(data: bytes) -> str | None:
    """png | jpeg | webp by magic bytes (what we accept), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """(width, height): the short side is the resolution's lines, both even (yuv420p needs it)."""
    short = RESOLUTIONS[resolution]
    w_ratio, h_ratio = ASPECT_RATIOS[aspect_ratio]
    width: float = short
    height: float = short
    if w_ratio >= h_ratio:
        width = short * w_ratio / h_ratio
    else:
        height = short * h_ratio / w_ratio
    return int(round(width / 2) * 2), int(round(height / 2) * 2)


def mask_alpha(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An OpenAI edit mask's alpha channel: 400 naming `mask` unless it is `size` and has alpha."""
    if mask.size != size:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"`mask` is {mask.width}x{mask.height}; it must be the image's size, {size[0]}x{size[1]}.",
            param="mask",
        )
    if "A" not in mask.getbands():
        raise TollwayError(
            ErrorCode.VALIDATION,
            "`mask` needs an alpha channel: its transparent pixels mark where the image is edited.",
            param="mask",
        )
    return mask.getchannel("A")


def masked(original: Image.Image, edited: bytes, alpha: Image.Image, fmt: str) -> bytes:
    """The edit kept only where the mask is transparent (OpenAI's meaning); the original elsewhere."""
    result = Image.open(io.BytesIO(edited)).convert("RGBA").resize(original.size)
    return encode(Image.composite(original.convert("RGBA"), result, alpha), fmt)
