"""The model catalog: the YAML contract of DESIGN §9 (its schema is base/config.py), checked as a
whole, with token prices in nano-USD and each model's effective markup."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import ValidationError

from tollway.base.config import (
    MODEL_TYPES,
    CatalogConfig,
    CatalogError,
    CharacterConfig,
    ModelConfig,
    decimal_string,
)
from tollway.core.catalog import characters as _characters
from tollway.core.money.prices import TokenPrices, scale_price
from tollway.errors import ErrorCode, TollwayError

VENICE_TYPE_NAMES = {"asr": "stt"}
# The `type` filters GET models takes: ours, Venice's names for them, `code` and `all`.
LISTED_TYPES = (*MODEL_TYPES, *VENICE_TYPE_NAMES, "code", "all")


class CatalogModel:
    """A model as the pipeline sees it: its config plus prices in nano-USD, markup applied."""

    __slots__ = ("config", "id", "markup", "private", "token_prices", "type")

    def __init__(self, config: ModelConfig, markup: Decimal, *, private: bool = False) -> None:
        self.config = config
        # No upstream sees its prompts (every route an embedded engine): Venice's privacy "private".
        self.private = private
        self.markup = markup  # the model's own, or the catalog's: every price of this model carries it
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
        # The characters the operator manages through the admin API (core/catalog/character_store.py).
        self.stored_characters: list[CharacterConfig] = []
        self._names: dict[str, CatalogModel] = {}
        problems: list[str] = []
        if len(self.providers) != len(config.providers):
            problems.append("two providers share an id")
        default_markup = Decimal(decimal_string(config.markup))
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
            markup = Decimal(decimal_string(m.markup)) if m.markup else default_markup
            local = all(
                r.provider in self.providers and self.providers[r.provider].kind == "local" for r in m.routes
            )
            model = CatalogModel(m, markup, private=local)
            self.models[m.id] = model
            self._names[m.id] = model
        for model in self.models.values():
            for alias in model.config.aliases:
                if alias in self._names and self._names[alias] is not model:
                    problems.append(f"alias {alias!r} of {model.id!r} is already a model id or alias")
                self._names.setdefault(alias, model)
        problems += _name_problems(config) + _characters.problems(config.characters)
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
        """The models of a type: ours, or Venice's names for them (`asr` is `stt`; `code` is the text
        models with the `code` capability)."""
        if model_type == "code":
            return [m for m in self.models.values() if m.type == "text" and m.supports("code")]
        model_type = VENICE_TYPE_NAMES.get(model_type, model_type)
        return [m for m in self.models.values() if model_type == "all" or m.type == model_type]

    @property
    def characters(self) -> list[CharacterConfig]:
        """The catalog file's characters, then the stored ones (a stored slug never shadows the file's)."""
        mine = {c.slug for c in self.config.characters}
        return [*self.config.characters, *(c for c in self.stored_characters if c.slug not in mine)]

    def private(self, model: CatalogModel) -> bool:
        """Whether no upstream sees the model's prompts: every route is an embedded engine."""
        return model.private


def parse_date(value: str) -> date:
    return date.fromisoformat(value[:10])


def _name_problems(config: CatalogConfig) -> list[str]:
    """What Catalog() refuses about compatibility names, deprecations and character model pins."""
    found: list[str] = []
    ids = {m.id: m for m in config.models}
    names = set(ids) | {a for m in config.models for a in m.aliases}
    for name, target in config.compatibility.items():
        if target not in ids:
            found.append(f"compatibility {name!r} maps to {target!r}, which is not a model id")
        if name in names:
            found.append(f"compatibility name {name!r} is already a model id or alias")
    for m in config.models:
        for name in m.compatible_with:
            if name in names:
                found.append(f"compatible_with {name!r} of {m.id!r} is already a model id or alias")
        if m.deprecation is None:
            continue
        try:
            parse_date(m.deprecation.date)
        except ValueError:
            found.append(f"model {m.id!r} has deprecation.date {m.deprecation.date!r}; write YYYY-MM-DD")
        replacement = m.deprecation.replacement
        if replacement is not None:
            if replacement not in ids:
                found.append(f"model {m.id!r} is replaced by {replacement!r}, which is not a model id")
            elif ids[replacement].type != m.type or ids[replacement].deprecation is not None:
                found.append(f"replacement {replacement!r} of {m.id!r} must be a live model of the same type")
    for character in config.characters:
        if character.model is not None and character.model not in names:
            found.append(
                f"character {character.slug!r} pins model {character.model!r}, which is not in `models`"
            )
    return found
