"""The model catalog: the YAML contract of DESIGN §9, validated, with prices in nano-USD."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tollway.core import characters as _characters
from tollway.core import model_names as _model_names
from tollway.core.characters import CharacterConfig
from tollway.core.policy import ContentPolicyConfig
from tollway.core.pricing import TokenPrices, scale_price
from tollway.errors import ErrorCode, TollwayError

ModelType = Literal["text", "embedding", "image", "tts", "stt", "video", "music", "upscale", "inpaint"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)


# What `sampling:` in a model entry may set (OpenAI names, and llama.cpp / vLLM extras).
SAMPLING_PARAMETERS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty"}
)


class CatalogError(ValueError):
    """The catalog file is wrong; the message names the entry and the fix."""


def _decimal_string(value: str) -> str:
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
    if Decimal(_decimal_string(value)) <= 0:
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
    # Async media jobs (core/job_pricing.py): per image when an input image is given (image mode);
    # flat additions per generation (images: per image) by option ("2K", "4K", "hd", ...); additions
    # per second of video by option ("1080p", "audio"); exact prices per "RES/DURs[/audio]" key.
    per_image_input: str | None = None
    surcharges: dict[str, str] = Field(default_factory=dict)
    per_second_surcharges: dict[str, str] = Field(default_factory=dict)
    per_generation: dict[str, str] = Field(default_factory=dict)

    @field_validator("input", "output", "cached_input", "reasoning", "per_image", "per_million_chars")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        return None if value is None else _decimal_string(value)

    @field_validator("per_second", "per_image_input")
    @classmethod
    def _decimal_media(cls, value: str | None) -> str | None:
        return None if value is None else _decimal_string(value)

    @field_validator("surcharges", "per_second_surcharges", "per_generation")
    @classmethod
    def _decimal_table(cls, value: dict[str, str]) -> dict[str, str]:
        return {key: _decimal_string(price) for key, price in value.items()}


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
    # Rate limiting (core/limits_gate.py): the model's class (a Venice table row; default by type) and
    # optional overrides of that class's limits.
    rate_class: str | None = None
    rate_limits: RateLimitsConfig | None = None


class CatalogConfig(_Strict):
    markup: str = "1.0"

    @field_validator("markup")
    @classmethod
    def _markup(cls, value: str) -> str:
        return _markup_string(value)

    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    # Custom or overridden account plans: plan name → model type (or "default") → limits.
    # Seed 004's free/standard/pro are built in (core/limits_gate.py); entries here replace them.
    plans: dict[str, dict[str, RateLimitsConfig]] = Field(default_factory=dict)
    # Optional content policy (tollway.core.policy): regex rules and an optional moderation model.
    content_policy: ContentPolicyConfig | None = None
    # Venice extensions (core/model_names.py, core/characters.py): foreign model name → model id,
    # and the characters chat requests name with venice_parameters.character_slug.
    compatibility: dict[str, str] = Field(default_factory=dict)
    characters: list[CharacterConfig] = Field(default_factory=list)


class CatalogModel:
    """A model as the pipeline sees it: its config plus prices in nano-USD, markup applied."""

    __slots__ = ("config", "id", "token_prices", "type")

    def __init__(self, config: ModelConfig, markup: Decimal) -> None:
        self.config = config
        self.id = config.id
        self.type = config.type
        p = config.pricing
        self.token_prices: TokenPrices | None = None
        if p.input is not None or p.output is not None:
            self.token_prices = TokenPrices(
                input=scale_price(p.input or "0", markup),
                output=scale_price(p.output or "0", markup),
                cached_input=None if p.cached_input is None else scale_price(p.cached_input, markup),
                reasoning=None if p.reasoning is None else scale_price(p.reasoning, markup),
            )

    def supports(self, capability: str) -> bool:
        return capability in self.config.capabilities


class Catalog:
    def __init__(self, config: CatalogConfig) -> None:
        self.config = config
        self.providers = {p.id: p for p in config.providers}
        self.models: dict[str, CatalogModel] = {}
        self._names: dict[str, CatalogModel] = {}
        problems: list[str] = []
        if len(self.providers) != len(config.providers):
            problems.append("two providers share an id")
        default_markup = Decimal(_decimal_string(config.markup))
        for m in config.models:
            if m.id in self.models:
                problems.append(f"model {m.id!r} is defined twice")
                continue
            for route in m.routes:
                if route.provider not in self.providers:
                    problems.append(
                        f"model {m.id!r} routes to provider {route.provider!r}, which is not in `providers`"
                    )
            if m.type in ("text", "embedding") and m.pricing.input is None:
                problems.append(f"model {m.id!r} has no pricing.input (USD per 1M tokens)")
            markup = Decimal(_decimal_string(m.markup)) if m.markup else default_markup
            model = CatalogModel(m, markup)
            self.models[m.id] = model
            self._names[m.id] = model
        for model in self.models.values():
            for alias in model.config.aliases:
                if alias in self._names and self._names[alias] is not model:
                    problems.append(f"alias {alias!r} of {model.id!r} is already a model id or alias")
                self._names.setdefault(alias, model)
        problems += _model_names.problems(config) + _characters.problems(config.characters)
        if problems:
            raise CatalogError("; ".join(problems))

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
        try:
            return cls(CatalogConfig.model_validate(raw or {}))
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise CatalogError(f"catalog {path} is invalid: {details}") from exc

    def resolve(self, name: object, *, param: str = "model") -> CatalogModel:
        """A public id or alias → the model; anything else is 400 INVALID_MODEL."""
        if not isinstance(name, str) or not name:
            raise TollwayError(ErrorCode.VALIDATION, "`model` is required and must be a string.", param=param)
        model = self._names.get(name)
        if model is None:
            raise TollwayError(
                ErrorCode.INVALID_MODEL,
                f"Unknown model {name!r}. GET /v1/models lists the models you can use.",
                param=param,
            )
        return model

    def of_type(self, model_type: str) -> list[CatalogModel]:
        return [m for m in self.models.values() if model_type == "all" or m.type == model_type]
