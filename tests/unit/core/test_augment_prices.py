"""The augment routes' prices (core/augment.py): operator settings in whole nano-USD, checked at startup."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tollway.core.augment import MODELS
from tollway.core.money.prices import usd_to_nano
from tollway.settings import Settings

FIELDS = ("augment_text_parser_usd", "augment_search_usd", "augment_scrape_usd")


def test_each_price_defaults_to_the_documents_least_price() -> None:
    settings = Settings()
    # Venice's document: x-payment-info price mode "dynamic", min "0.001", max "10.00" USD a call.
    assert [usd_to_nano(getattr(settings, name)) for name in FIELDS] == [1_000_000] * 3


@pytest.mark.parametrize("name", FIELDS)
def test_a_price_is_whole_nano_usd_and_not_negative(name: str) -> None:
    assert getattr(Settings(**{name: Decimal("0.000000001")}), name) == Decimal("1e-9")
    assert getattr(Settings(**{name: Decimal(0)}), name) == 0  # free
    with pytest.raises(ValidationError, match="9 decimals"):
        Settings(**{name: Decimal("0.0000000005")})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings(**{name: Decimal("-0.001")})


def test_each_operation_has_its_own_usage_model() -> None:
    assert {op: model.id for op, model in MODELS.items()} == {
        "text-parser": "augment-text-parser",
        "search": "augment-search",
        "scrape": "augment-scrape",
    }
    # Neither a key's content tier nor its modelPrivacy (which restricts models) refuses these routes.
    assert all(model.config.tier != "uncensored" and model.private for model in MODELS.values())
