"""A catalog model as clients see it: OpenAI's model object plus Venice's `model_spec`.

`model_spec` follows Venice's OpenAPI document (ModelResponse, issue 23): `privacy` ("private" when
every route of the model is an embedded engine, "anonymized" when an upstream sees the prompt),
every capability flag the document requires (from the catalog's `capabilities`, false when absent),
and prices under the document's key names for the model's type, each `{"usd", "diem"}`. Tollway has
no DIEM; a DIEM is a dollar of daily credit on Venice, so the DIEM figure is the USD one. Prices carry
the model's markup (they are what a call is charged), and are numbers in Venice's shape: money itself
never goes through a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tollway.core.catalog.catalog import Catalog, CatalogModel
from tollway.core.money.prices import NANO_PER_USD, scale_price
from tollway.dialects import models as shapes
from tollway.errors import ErrorCode, TollwayError

CREATED = 1_767_225_600  # 2026-01-01: catalog entries have no creation time of their own
VENICE_OWNER = "venice.ai"  # the document's enum for `owned_by`: Venice clients validate it
# Tollway's model types → Venice's (`stt` is Venice's `asr`); types Venice has no name for (moderation)
# are left out of /api/v1's `type=all` list, whose schema enumerates the types.
VENICE_TYPES = {"stt": "asr"}
VENICE_KNOWN = ("text", "embedding", "image", "tts", "stt", "video", "music", "upscale", "inpaint")
# Venice capability flag → the catalog capability that sets it.
FLAGS = {
    "optimizedForCode": "code",
    "supportsFunctionCalling": "tools",
    "supportsAudioInput": "audio_input",
    "supportsReasoning": "reasoning",
    "supportsReasoningEffort": "reasoning_effort",
    "supportsResponseSchema": "json_schema",
    "supportsMultipleImages": "multiple_images",
    "supportsVision": "vision",
    "supportsVideoInput": "video_input",
    "supportsWebSearch": "web_search",
    "supportsLogProbs": "logprobs",
    "supportsTeeAttestation": "tee",  # never offered: no TEE here
    "supportsE2EE": "e2ee",  # never offered: no end-to-end encrypted models here
    "supportsXSearch": "x_search",
}
NEVER = ("supportsTeeAttestation", "supportsE2EE")


def _usd(nano: int) -> float:
    return float(Decimal(nano) / NANO_PER_USD)


def _price(nano: int) -> dict[str, float]:
    usd = _usd(nano)
    return {"usd": usd, "diem": usd}


def venice_pricing(model: CatalogModel) -> dict[str, Any]:
    """The model's prices under the document's keys for its type (ModelResponse.model_spec.pricing)."""
    p, markup, prices = model.config.pricing, model.markup, model.token_prices
    if prices is not None:
        pricing: dict[str, Any] = {"input": _price(prices.input)}
        if model.type != "embedding":
            pricing["output"] = _price(prices.output)
        if prices.cached_input is not None:
            pricing["cache_input"] = _price(prices.cached_input)
        return pricing
    if p.per_image is not None:
        each = scale_price(p.per_image, markup)
        if model.type == "upscale":  # the charge is price × scale² / 4 (money/prices.py upscale_cost)
            return {"upscale": {"2x": _price(each), "4x": _price(4 * each)}}
        return {"inpaint" if model.type == "inpaint" else "generation": _price(each)}
    if p.per_million_chars is not None:
        return {"per_thousand_characters": _price(scale_price(p.per_million_chars, markup) // 1000)}
    if p.per_second is not None:
        key = "per_audio_second" if model.type == "stt" else "per_second"
        return {key: _price(scale_price(p.per_second, markup))}
    return {}


def capabilities(model: CatalogModel) -> dict[str, Any]:
    caps = set(model.config.capabilities)
    flags: dict[str, Any] = {flag: cap in caps and flag not in NEVER for flag, cap in FLAGS.items()}
    flags["quantization"] = "not-available"
    return flags


def model_object(model: CatalogModel, *, private: bool = False, venice: bool = False) -> dict[str, Any]:
    """The model as GET models lists it; `venice` for /api/v1 (the document's `owned_by` and types)."""
    config = model.config
    return {
        "id": model.id,
        "object": "model",
        "created": CREATED,
        "owned_by": VENICE_OWNER if venice else config.owned_by,
        "type": VENICE_TYPES.get(config.type, config.type) if venice else config.type,
        **({"context_length": config.context_length} if config.context_length else {}),
        "model_spec": {
            "name": config.name or model.id,
            "privacy": "private" if private else "anonymized",
            **({"availableContextTokens": config.context_length} if config.context_length else {}),
            **({"maxCompletionTokens": config.max_output_tokens} if config.max_output_tokens else {}),
            "pricing": venice_pricing(model),
            "tier": config.tier,
            "uncensored": config.tier == "uncensored",
            "traits": config.traits,
            "capabilities": capabilities(model),
            **({"description": config.description} if config.description else {}),
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
