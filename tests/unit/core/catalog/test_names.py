"""Model names: ids, traits, compatibility mappings and deprecations (core/catalog/names.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.unit.core.venice_catalog import catalog, model_entry
from tollway.base.config import CatalogConfig, CatalogError
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog
from tollway.errors import ErrorCode, TollwayError


def test_resolution_order_id_then_trait_then_compatibility() -> None:
    c = catalog()
    assert model_names.resolve(c, "small", "text").id == "small"
    assert model_names.resolve(c, "default", "text").id == "big"  # first claimant wins
    assert model_names.resolve(c, "fastest", "text").id == "small"
    assert model_names.resolve(c, "default", "embedding").id == "embed"  # traits are per type
    assert model_names.resolve(c, "gpt-4o", "text").id == "big"  # compatible_with
    assert model_names.resolve(c, "gpt-4o-mini", "text").id == "small"  # compatibility:
    for name, model_type in (("nope", "text"), ("text-embedding-3-small", "text"), ("embed", "text")):
        with pytest.raises(TollwayError) as caught:
            model_names.resolve(c, name, model_type)
        assert caught.value.code is ErrorCode.INVALID_MODEL


def test_traits_and_mapping_views_filter_by_type() -> None:
    c = catalog()
    assert model_names.traits(c, "text") == {
        "default": "big",
        "function_calling_default": "big",
        "fastest": "small",
    }
    assert model_names.compatibility(c, "text") == {"gpt-4o-mini": "small", "gpt-4o": "big"}
    assert model_names.compatibility(c, "embedding") == {"text-embedding-3-small": "embed"}


def test_deprecation_before_and_after_the_date() -> None:
    c = catalog()
    model, headers = model_names.deprecation(c, c.models["old"], today=date(2029, 12, 31))
    assert model.id == "old"
    assert headers["x-venice-model-deprecation-date"] == "2030-01-01"
    assert "use big" in headers["x-venice-model-deprecation-warning"]
    model, headers = model_names.deprecation(c, c.models["old"], today=date(2030, 1, 1))
    assert model.id == "big" and "big answered instead" in headers["x-tollway-model-deprecation-warning"]
    with pytest.raises(TollwayError) as caught:
        model_names.deprecation(c, c.models["gone"])
    assert caught.value.code is ErrorCode.MODEL_DEPRECATED and caught.value.status == 410
    assert model_names.deprecation(c, c.models["big"]) == (c.models["big"], {})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"compatibility": {"gpt-4o": "missing"}}, "not a model id"),
        ({"compatibility": {"small": "big"}}, "already a model id"),
        (
            {"characters": [{"slug": "x", "name": "X", "system_prompt": "p", "model": "missing"}]},
            "pins model",
        ),
        (
            {"characters": [{"slug": "x", "name": "X", "system_prompt": "p", "settings": {"evil": 1}}]},
            "settings",
        ),
    ],
)
def test_catalog_refuses_bad_venice_entries(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog(**extra)


def test_catalog_refuses_a_bad_deprecation() -> None:
    bad = [
        model_entry("a", deprecation={"date": "soon"}),
        model_entry("b", deprecation={"date": "2030-01-01", "replacement": "zz"}),
    ]
    with pytest.raises(CatalogError, match=r"YYYY-MM-DD.*not a model id"):
        Catalog(
            CatalogConfig.model_validate(
                {"providers": [{"id": "up", "kind": "openai", "base_url": "http://x"}], "models": bad}
            )
        )
