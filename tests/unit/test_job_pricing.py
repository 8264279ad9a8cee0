"""Job quotes (core/job_pricing.py): seed 001's credit tables exactly, surcharges, markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.core import job_pricing
from tollway.core.catalog import Catalog
from tollway.errors import TollwayError
from tollway.providers.local.video import frame_size

SEED001 = Catalog.load(Path(__file__).resolve().parents[2] / "catalog" / "examples" / "seed001-media.yaml")
CENT = 10_000_000  # one seed-001 credit at TOLLWAY_CREDIT_USD=0.01, in nano-USD


@pytest.mark.parametrize(
    ("resolution", "seconds", "audio", "credits"),
    [("720p", 4, False, 10), ("720p", 8, True, 30), ("1080p", 6, False, 20), ("1080p", 8, True, 35)],
)
def test_veo_table_is_exact(resolution: str, seconds: int, audio: bool, credits: int) -> None:
    model = SEED001.resolve("veo-3.1-fast")
    ask = job_pricing.VideoAsk(seconds, resolution, audio)
    assert job_pricing.video_quote(SEED001, model, ask) == credits * CENT


def test_table_model_refuses_unlisted_combinations() -> None:
    with pytest.raises(TollwayError, match="does not offer 720p/5s"):
        job_pricing.video_quote(
            SEED001, SEED001.resolve("veo-3.1-fast"), job_pricing.VideoAsk(5, "720p", False)
        )


def test_per_second_with_surcharge() -> None:
    model = SEED001.resolve("wan-2.5")
    assert job_pricing.video_quote(SEED001, model, job_pricing.VideoAsk(10, "1080p", False)) == 30 * CENT


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
    quote = job_pricing.image_quote(
        SEED001, SEED001.resolve(model), n=n, tier=tier, quality=quality, with_input=with_input
    )
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
