"""The catalog YAML schema (DESIGN §9): every model of the file, validated, with no behaviour.

The floor below everything that reads the catalog: providers take their `ProviderConfig` from here,
the core builds its Catalog (core/catalog/catalog.py) from a `CatalogConfig`, and the content policy,
rate limits and characters read their sections. Prices stay decimal strings of USD here; their
nano-USD values, markup applied, are core/money/prices.py's.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Created/updated times when the YAML gives none (catalog entries have no history of their own).
EPOCH = "2026-01-01T00:00:00.000Z"

ModelType = Literal[
    "text", "embedding", "image", "tts", "stt", "video", "music", "upscale", "inpaint", "moderation"
]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)


# What `sampling:` in a model entry may set (OpenAI names, and llama.cpp / vLLM extras).
SAMPLING_PARAMETERS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty"}
)


class CatalogError(ValueError):
    """The catalog file is wrong; the message names the entry and the fix."""


def decimal_string(value: str) -> str:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f'{value!r} is not a decimal number; write prices as strings like "0.10"') from exc
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return value


def _markup_string(value: str) -> str:
    if Decimal(decimal_string(value)) <= 0:
        raise ValueError(f'markup {value!r} must be positive, e.g. "1.25"')
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueApiConfig(_Strict):
    """Paths (relative to base_url) of an upstream's queue/poll media API, Venice/NightVeil shaped:
    POST queue {model, prompt, ...} → {queue_id}; POST retrieve {model, queue_id} → status JSON or
    the media bytes (or JSON with a download url) once done."""

    video_queue: str = "video/queue"
    video_retrieve: str = "video/retrieve"
    audio_queue: str = "audio/queue"
    audio_retrieve: str = "audio/retrieve"
    poll_interval_seconds: float | None = None  # default: TOLLWAY_JOBS_POLL_INTERVAL_SECONDS
    poll_timeout_seconds: float | None = None  # then `unknown`: default TOLLWAY_JOBS_POLL_TIMEOUT_SECONDS


class ProviderConfig(_Strict):
    id: str
    kind: Literal["openai", "anthropic", "gemini", "local"]
    base_url: str | None = None
    api_key_env: str | None = None  # the secret itself only ever comes from the environment
    headers: dict[str, str] = Field(default_factory=dict)
    organization: str | None = None
    timeout_seconds: float | None = None
    # `openai` kind: the request parameters this upstream takes; others are dropped, not refused.
    allowed_params: list[str] | None = None
    # `openai` kind: `venice` uses Venice's native image routes (providers/openai/media.py).
    flavor: Literal["openai", "venice"] = "openai"
    # `openai` kind: the upstream's queue/poll media API for async jobs (providers/queue_media.py).
    jobs: QueueApiConfig | None = None
    # `openai` kind: OpenAI's APIs this upstream serves natively beyond chat: `responses` (a Responses
    # request is passed through as is, core/inference/responses/native.py), `image_variations`
    # (/images/variations), `audio_translations` (/audio/translations). Others are refused or translated.
    protocols: list[Literal["responses", "image_variations", "audio_translations"]] = Field(
        default_factory=list
    )


class RouteConfig(_Strict):
    provider: str
    model: str
    priority: int = 0
    weight: int = Field(default=1, ge=1)


class PricingConfig(_Strict):
    """USD per 1M tokens (input/output/cached_input/reasoning), per image, per 1M characters, per second."""

    input: str | None = None
    output: str | None = None
    cached_input: str | None = None
    reasoning: str | None = None
    per_image: str | None = None
    per_million_chars: str | None = None
    per_second: str | None = None
    # Async media jobs (core/money/prices.py): per image when an input image is given (image mode);
    # flat additions per generation (images: per image) by option ("2K", "4K", "hd", ...); additions
    # per second of video by option ("1080p", "audio"); exact prices per "RES/DURs[/audio]" key.
    per_image_input: str | None = None
    surcharges: dict[str, str] = Field(default_factory=dict)
    per_second_surcharges: dict[str, str] = Field(default_factory=dict)
    per_generation: dict[str, str] = Field(default_factory=dict)
    # Batches (core/batches/): a batch line costs the live price less this fraction ("0.5" = half
    # price), rounded up to the nano; none = full price.
    batch_discount: str | None = None

    @field_validator("batch_discount")
    @classmethod
    def _fraction(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = decimal_string(value)
        if not Decimal(0) <= Decimal(value) < Decimal(1):
            raise ValueError('batch_discount is a fraction from 0 up to (not including) 1, e.g. "0.5"')
        return value

    @field_validator("input", "output", "cached_input", "reasoning", "per_image", "per_million_chars")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        return None if value is None else decimal_string(value)

    @field_validator("per_second", "per_image_input")
    @classmethod
    def _decimal_media(cls, value: str | None) -> str | None:
        return None if value is None else decimal_string(value)

    @field_validator("surcharges", "per_second_surcharges", "per_generation")
    @classmethod
    def _decimal_table(cls, value: dict[str, str]) -> dict[str, str]:
        return {key: decimal_string(price) for key, price in value.items()}


class RateLimitsConfig(_Strict):
    """Rate limits of a plan or a model (DESIGN §5); unset = no limit from this source."""

    rpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)


class DeprecationConfig(_Strict):
    date: str
    replacement: str | None = None


class ModelConfig(_Strict):
    id: str
    name: str | None = None
    type: ModelType = "text"
    tier: Literal["standard", "uncensored"] = "standard"
    routes: list[RouteConfig] = Field(min_length=1)
    pricing: PricingConfig
    markup: str | None = None

    @field_validator("markup")
    @classmethod
    def _markup(cls, value: str | None) -> str | None:
        return None if value is None else _markup_string(value)

    context_length: int | None = None
    max_output_tokens: int | None = None
    capabilities: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    traits: list[str] = Field(default_factory=list)
    compatible_with: list[str] = Field(default_factory=list)  # foreign names (gpt-4o) for this model
    deprecation: DeprecationConfig | None = None
    description: str | None = None
    # The operator's default system prompt, put before the caller's own messages (Venice's
    # include_venice_system_prompt; a request opts out with venice_parameters).
    system_prompt: str | None = None
    # Sampling the operator sets for this model when a request leaves it out (a request's own value
    # wins): a small model can need a lower temperature than its server's default to stay coherent.
    sampling: dict[str, float] = Field(default_factory=dict)

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - SAMPLING_PARAMETERS)
        if unknown:
            raise ValueError(f"unknown sampling parameter(s) {unknown}: use {sorted(SAMPLING_PARAMETERS)}")
        return value

    owned_by: str = "tollway"
    # Rate limiting (core/limits/gate.py): the model's class (a Venice table row; default by type) and
    # optional overrides of that class's limits.
    rate_class: str | None = None
    rate_limits: RateLimitsConfig | None = None


class PolicyRule(_Strict):
    id: str = Field(min_length=1, max_length=80)
    pattern: str
    categories: list[str] = Field(default_factory=list)
    applies_to: Literal["all", "sfw"] = "all"
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class ModerationConfig(_Strict):
    """An OpenAI-compatible moderation endpoint; the secret comes from the environment."""

    base_url: str
    api_key_env: str | None = None
    model: str = "omni-moderation-latest"
    # Flagged categories that block an sfw key; None = any flagged category.
    categories: list[str] | None = None
    timeout_seconds: float = 10.0
    # When the moderation endpoint fails: false = refuse the request (503), true = let it through.
    fail_open: bool = False


class ContentPolicyConfig(_Strict):
    prohibited_categories: list[str] = Field(default_factory=list)
    rules: list[PolicyRule] = Field(default_factory=list)
    moderation: ModerationConfig | None = None


class CharacterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str
    description: str | None = None
    system_prompt: str
    model: str | None = None  # pins the model that answers as this character
    settings: dict[str, Any] = Field(default_factory=dict)
    web_enabled: bool = True  # false: web search is off for this character
    adult: bool = False  # adult characters need an uncensored-tier, age-verified key
    tags: list[str] = Field(default_factory=list)
    photo_url: str | None = None
    share_url: str | None = None
    imports: int = 0
    created_at: str = EPOCH
    updated_at: str = EPOCH
    # Venice's discovery fields: a stable id (derived from the slug unless given), the author's short
    # handle, featured. Ratings are not collected (no reviews): the stats say 0 ratings.
    id: str | None = None
    author: str = "operator"
    featured: bool = False


class CatalogConfig(_Strict):
    markup: str = "1.0"

    @field_validator("markup")
    @classmethod
    def _markup(cls, value: str) -> str:
        return _markup_string(value)

    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    # Custom or overridden account plans: plan name → model type (or "default") → limits.
    # Seed 004's free/standard/pro are built in (core/limits/gate.py); entries here replace them.
    plans: dict[str, dict[str, RateLimitsConfig]] = Field(default_factory=dict)
    # Optional content policy (tollway.core.access.policy): regex rules and an optional moderation model.
    content_policy: ContentPolicyConfig | None = None
    # Venice extensions (core/catalog/names.py, core/catalog/characters.py): foreign model name → model id,
    # and the characters chat requests name with venice_parameters.character_slug.
    compatibility: dict[str, str] = Field(default_factory=dict)
    characters: list[CharacterConfig] = Field(default_factory=list)
