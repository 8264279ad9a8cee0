"""A key's modelPrivacy (core/catalog/privacy.py): Venice's three policies over private and anonymized
models of each type, the 403 a refused call gets, and the catalog's private flag it reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.base.config import CatalogConfig, ModelConfig
from tollway.core.caller import Caller
from tollway.core.catalog import privacy
from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.errors import ErrorCode, TollwayError

MEDIA = ("image", "tts", "stt", "video", "music", "upscale", "inpaint")


@pytest.mark.parametrize("model_type", ("text", "embedding", *MEDIA))
def test_all_allows_every_model(model_type: str) -> None:
    assert privacy.allows("ALL", model_type, private=False)
    assert privacy.allows("ALL", model_type, private=True)


@pytest.mark.parametrize("model_type", ("text", "embedding"))
def test_private_text_holds_text_and_embeddings_to_private(model_type: str) -> None:
    assert not privacy.allows("PRIVATE_TEXT", model_type, private=False)
    assert privacy.allows("PRIVATE_TEXT", model_type, private=True)


@pytest.mark.parametrize("model_type", MEDIA)
def test_private_text_lets_media_models_be_anonymized(model_type: str) -> None:
    assert privacy.allows("PRIVATE_TEXT", model_type, private=False)
    assert privacy.allows("PRIVATE_TEXT", model_type, private=True)


@pytest.mark.parametrize("model_type", ("text", "embedding", *MEDIA))
def test_private_only_refuses_every_anonymized_model(model_type: str) -> None:
    assert not privacy.allows("PRIVATE_ONLY", model_type, private=False)
    assert privacy.allows("PRIVATE_ONLY", model_type, private=True)


def test_an_unknown_policy_refuses_rather_than_leaks() -> None:
    assert not privacy.allows("SOMETHING_NEW", "image", private=False)


def _model(private: bool, model_type: str = "text") -> CatalogModel:
    config = ModelConfig.model_validate(
        {
            "id": "up-1",
            "type": model_type,
            "routes": [{"provider": "p", "model": "x"}],
            "pricing": {"input": "1"},
        }
    )
    return CatalogModel(config, Decimal(1), private=private)


def test_check_names_the_model_the_policy_and_what_to_do() -> None:
    caller = Caller("inference", key_id="k", account_id="a", model_privacy="PRIVATE_ONLY")
    with pytest.raises(TollwayError) as caught:
        privacy.check(caller, _model(private=False))
    err = caught.value
    assert err.code is ErrorCode.MODEL_PRIVACY_FORBIDDEN and err.status == 403
    assert "'up-1'" in err.message and "PRIVATE_ONLY" in err.message and "private" in err.message
    assert err.param == "model" and err.extra == {"modelPrivacy": "PRIVATE_ONLY"}
    privacy.check(caller, _model(private=True))  # allowed: no error
    privacy.check(Caller("inference", key_id="k", account_id="a"), _model(private=False))  # ALL


def test_the_catalog_marks_models_whose_every_route_is_embedded_private() -> None:
    catalog = Catalog(
        CatalogConfig.model_validate(
            {
                "providers": [
                    {"id": "up", "kind": "openai", "base_url": "http://127.0.0.1:1/v1"},
                    {"id": "here", "kind": "local"},
                ],
                "models": [
                    {
                        "id": "local-m",
                        "routes": [{"provider": "here", "model": "x"}],
                        "pricing": {"input": "1"},
                    },
                    {"id": "up-m", "routes": [{"provider": "up", "model": "x"}], "pricing": {"input": "1"}},
                    {
                        "id": "mixed",
                        "routes": [{"provider": "here", "model": "x"}, {"provider": "up", "model": "y"}],
                        "pricing": {"input": "1"},
                    },
                ],
            }
        )
    )
    assert catalog.models["local-m"].private and catalog.private(catalog.models["local-m"])
    assert not catalog.models["up-m"].private
    assert not catalog.models["mixed"].private  # a fallback to an upstream sees the prompt
