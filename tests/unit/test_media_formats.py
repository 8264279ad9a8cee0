"""The public media vocabulary and image codec (media_formats.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tollway import media_formats
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.local import images


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_every_format_is_real(fmt: str, pil: str) -> None:
    data = media_formats.encode(images.generate(images.Generation("x", 64, 64)), fmt)
    assert media_formats.sniff(data) == fmt
    assert _open(data).format == pil


def test_decode_tells_a_wrong_format_from_a_corrupted_image() -> None:
    with pytest.raises(TollwayError) as wrong:
        media_formats.decode(b"GIF89a not accepted")
    assert wrong.value.code is ErrorCode.INVALID_IMAGE_FORMAT
    png = media_formats.encode(images.generate(images.Generation("x", 64, 64)), "png")
    with pytest.raises(TollwayError) as broken:
        media_formats.decode(png[:40])
    assert broken.value.code is ErrorCode.CORRUPTED_IMAGE
