"""A catalog model as clients see it: OpenAI's model object plus Venice's `model_spec`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.money.prices import NANO_PER_USD
from tollway.dialects import models as shapes
from tollway.errors import ErrorCode, TollwayError

CREATED = 1_767_225_600  # 2026-01-01: catalog entries have no creation time of their own


def _usd(nano: int) -> float:
    # model_spec prices are numbers in Venice's shape; money itself never goes through a float.
    return float(Decimal(nano) / NANO_PER_USD)


def model_object(model: CatalogModel) -> dict[str, Any]:
    config = model.config
    pricing: dict[str, Any] = {}
    if model.token_prices is not None:
        pricing["input"] = {"usd": _usd(model.token_prices.input)}
        pricing["output"] = {"usd": _usd(model.token_prices.output)}
        if model.token_prices.cached_input is not None:
            pricing["cache_input"] = {"usd": _usd(model.token_prices.cached_input)}
    for name in ("per_image", "per_million_chars", "per_second"):
        value = getattr(config.pricing, name)
        if value is not None:
            pricing[name] = {"usd": float(Decimal(value))}
    caps = set(config.capabilities)
    return {
        "id": model.id,
        "object": "model",
        "created": CREATED,
        "owned_by": config.owned_by,
        "type": config.type,
        "model_spec": {
            "name": config.name or model.id,
            "availableContextTokens": config.context_length,
            "maxCompletionTokens": config.max_output_tokens,
            "pricing": pricing,
            "tier": config.tier,
            "traits": config.traits,
            "capabilities": {
                "supportsFunctionCalling": "tools" in caps,
                "supportsVision": "vision" in caps,
                "supportsResponseSchema": "json_schema" in caps,
                "supportsReasoning": "reasoning" in caps,
                "supportsWebSearch": "web_search" in caps,
                "supportsLogProbs": "logprobs" in caps,
            },
            "description": config.description,
            "offline": False,
        },
    }


# -- the chat models as the anthropic and google-genai SDKs list them (api/anthropic.py, api/gemini.py) --


def _listed(model: CatalogModel) -> shapes.Listed:
    config = model.config
    return shapes.Listed(
        model.id,
        config.name or model.id,
        CREATED,
        config.description,
        config.context_length,
        config.max_output_tokens,
    )


def chat_models(catalog: Catalog) -> list[shapes.Listed]:
    """The models /v1/messages and :generateContent serve."""
    return [_listed(m) for m in catalog.models.values() if m.type == "text"]


def chat_model(catalog: Catalog, name: str) -> shapes.Listed:
    model = catalog.models.get(name)
    if model is None or model.type != "text":
        raise TollwayError(ErrorCode.NOT_FOUND, f"No chat model {name[:100]!r}: list them with GET models.")
    return _listed(model)
