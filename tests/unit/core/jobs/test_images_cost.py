"""An image job that returned fewer images than it asked for (core/jobs/runner.py `_images_cost`):
charged the returned images at the job's tier, quality and input prices, with the model's markup,
never more than its quote, and the quote when nothing or everything came back. Survivors of the
mutation run (docs/testing.md); the expected prices are worked out by hand from the catalog rule
(per image, or per image with an input, plus each option's surcharge, times the markup, rounded up
to the nano)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from tollway.base.config import ModelConfig
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.jobs.runner import JobRunner

MODEL = CatalogModel(
    ModelConfig.model_validate(
        {
            "id": "painter",
            "type": "image",
            "routes": [{"provider": "p", "model": "x"}],
            "pricing": {
                "per_image": "0.04",
                "per_image_input": "0.05",
                "surcharges": {"2K": "0.01", "hd": "0.02"},
            },
        }
    ),
    Decimal("1.35"),
)


def _runner() -> JobRunner:
    runner = JobRunner.__new__(JobRunner)
    catalog = SimpleNamespace(resolve=lambda model_id: MODEL)
    runner.pipeline = SimpleNamespace(catalog=catalog)  # type: ignore[assignment]
    return runner


def _job(quote_nano: int, units: int = 4, **params: Any) -> Any:
    return SimpleNamespace(model="painter", units=units, quote_nano=quote_nano, params=params)


def test_a_short_image_job_pays_for_the_images_it_returned_at_their_options() -> None:
    runner = _runner()
    # Each 0.05 (with an input) + 0.01 (2K) + 0.02 (hd) = 0.08; two of them × 1.35 = 0.216 USD.
    job = _job(432_000_000, tier="2K", quality="hd", input_media="media_1")
    assert runner._images_cost(job, 2) == (216_000_000, 2)
    # Without an input: 0.04 + 0.01 + 0.02 = 0.07; one × 1.35 = 0.0945 USD.
    assert runner._images_cost(_job(378_000_000, tier="2K", quality="hd"), 1) == (94_500_000, 1)
    # Without a quality: 0.04 + 0.01 = 0.05; three × 1.35 = 0.2025 USD.
    assert runner._images_cost(_job(270_000_000, tier="2K"), 3) == (202_500_000, 3)


def test_no_image_or_every_image_or_an_unknown_tier_is_charged_the_quote() -> None:
    runner = _runner()
    job = _job(270_000_000, tier="2K")
    assert runner._images_cost(job, 0) == (270_000_000, 4)
    assert runner._images_cost(job, 4) == (270_000_000, 4)
    # Quoted before a reload cut the price: every image came back, so the quote it was admitted at.
    assert runner._images_cost(_job(300_000_000, tier="2K"), 4) == (300_000_000, 4)
    assert runner._images_cost(_job(270_000_000), 2) == (270_000_000, 4)  # no tier recorded


def test_the_returned_images_never_cost_more_than_or_as_much_as_the_quote() -> None:
    """A quote made at an older, lower price (or a discount) stays the ceiling, units and all."""
    runner = _runner()
    two = 135_000_000  # two at 0.05 × 1.35
    assert runner._images_cost(_job(two - 1, tier="2K"), 2) == (two - 1, 4)
    assert runner._images_cost(_job(two, tier="2K"), 2) == (two, 4)
    assert runner._images_cost(_job(two + 1, tier="2K"), 2) == (two, 2)
