"""Job quotes (core/money/prices.py): seed 001's credit tables exactly, surcharges, markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tollway.core.catalog.catalog import Catalog
from tollway.core.money import prices
from tollway.errors import ErrorCode, TollwayError
from tollway.media_formats import frame_size

SEED001 = Catalog.load(Path(__file__).resolve().parents[4] / "catalog" / "examples" / "seed001-media.yaml")
CENT = 10_000_000  # one seed-001 credit at TOLLWAY_CREDIT_USD=0.01, in nano-USD


@pytest.mark.parametrize(
    ("resolution", "seconds", "audio", "credits"),
    [("720p", 4, False, 10), ("720p", 8, True, 30), ("1080p", 6, False, 20), ("1080p", 8, True, 35)],
)
def test_veo_table_is_exact(resolution: str, seconds: int, audio: bool, credits: int) -> None:
    model = SEED001.resolve("veo-3.1-fast")
    ask = prices.VideoAsk(seconds, resolution, audio)
    assert prices.video_quote(model, ask) == credits * CENT


def test_table_model_refuses_unlisted_combinations_and_names_what_it_offers() -> None:
    with pytest.raises(TollwayError) as info:
        prices.video_quote(SEED001.resolve("veo-3.1-fast"), prices.VideoAsk(5, "720p", False))
    assert (info.value.code, info.value.param) == (ErrorCode.VALIDATION, "duration")
    assert info.value.message == (
        "'veo-3.1-fast' does not offer 720p/5s; it offers 1080p/4s, 1080p/4s/audio, 1080p/6s, "
        "1080p/6s/audio, 1080p/8s, 1080p/8s/audio, 720p/4s, 720p/4s/audio, 720p/6s, 720p/6s/audio, "
        "720p/8s, 720p/8s/audio."
    )


def test_per_second_with_surcharge() -> None:
    model = SEED001.resolve("wan-2.5")
    assert prices.video_quote(model, prices.VideoAsk(10, "1080p", False)) == 30 * CENT


@pytest.mark.parametrize(
    ("model", "n", "tier", "quality", "with_input", "credits"),
    [
        ("nano-banana", 1, "1K", "standard", False, 1),
        ("nano-banana", 2, "1K", "hd", True, 8),
        ("nano-banana-pro", 1, "4K", None, False, 20),
        ("nano-banana-2", 3, "2K", None, True, 36),
    ],
)
def test_image_credits(
    model: str, n: int, tier: str, quality: str | None, with_input: bool, credits: int
) -> None:
    quote = prices.image_quote(SEED001.resolve(model), n=n, tier=tier, quality=quality, with_input=with_input)
    assert quote == credits * CENT


@pytest.mark.parametrize(
    ("resolution", "aspect", "size"),
    [
        ("720p", "16:9", (1280, 720)),
        ("1080p", "9:16", (1080, 1920)),
        ("480p", "1:1", (480, 480)),
        ("720p", "4:3", (960, 720)),
    ],
)
def test_frame_sizes(resolution: str, aspect: str, size: tuple[int, int]) -> None:
    assert frame_size(resolution, aspect) == size


UNPRICED = """
providers: [{id: local, kind: local}]
models:
  - {id: table-video, type: video, routes: [{provider: local, model: v}], pricing: {per_generation: {"720p/4s": "1"}}}
  - {id: bare-video, type: video, routes: [{provider: local, model: v}], pricing: {per_image: "1"}}
  - {id: bare-image, type: image, routes: [{provider: local, model: i}], pricing: {per_second: "1"}}
  - {id: bare-music, type: music, routes: [{provider: local, model: m}], pricing: {per_image: "1"}}
  - {id: bare-tts, type: tts, routes: [{provider: local, model: t}], pricing: {per_second: "1"}}
"""


@pytest.mark.parametrize(
    ("model_id", "quote", "field"),
    [
        (
            "bare-video",
            lambda c, m: prices.video_quote(m, prices.VideoAsk(4, "720p", False)),
            "per_second",
        ),
        (
            "bare-image",
            lambda c, m: prices.image_quote(m, n=1, tier="1K", quality=None, with_input=False),
            "per_image",
        ),
        ("bare-music", lambda c, m: prices.seconds_quote(m, 5), "per_second"),
        ("bare-tts", lambda c, m: prices.speech_quote(m, 100), "per_million_chars"),
        # the synchronous media routes' price (core/media/pipeline.py)
        ("bare-image", lambda c, m: prices.unit_price(m, "per_image"), "per_image"),
        ("bare-tts", lambda c, m: prices.unit_price(m, "per_million_chars"), "per_million_chars"),
        ("bare-music", lambda c, m: prices.unit_price(m, "per_second"), "per_second"),
    ],
)
def test_a_model_without_the_routes_price_cannot_serve_it(
    tmp_path: Path, model_id: str, quote: Any, field: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(UNPRICED)
    catalog = Catalog.load(path)
    with pytest.raises(TollwayError) as info:
        quote(catalog, catalog.resolve(model_id))
    assert (info.value.code, info.value.param) == (ErrorCode.INVALID_MODEL, "model")
    assert info.value.message == f"{model_id!r} has no `{field}` price; it cannot serve this route."


def test_a_table_model_names_what_it_offers(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(UNPRICED)
    catalog = Catalog.load(path)
    model = catalog.resolve("table-video")
    assert prices.offered_video(model) == ({"720p"}, {4})
    with pytest.raises(TollwayError) as info:
        prices.video_quote(model, prices.VideoAsk(8, "720p", True))
    assert (info.value.code, info.value.param) == (ErrorCode.VALIDATION, "duration")
    assert info.value.message == "'table-video' does not offer 720p/8s/audio; it offers 720p/4s."
    assert prices.offered_video(catalog.resolve("bare-video")) is None
