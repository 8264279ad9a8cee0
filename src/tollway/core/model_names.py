"""How a `model` string names a catalog model (seed 002 §3.4, §6.4, §6.5, §6.7).

Order: exact id or alias → trait of the route's model type (`default`, `fastest`, … from each
model's `traits`) → compatibility mapping (`gpt-4o` → a catalog model, from the catalog's
`compatibility:` map or a model's `compatible_with` list) → 400 INVALID_MODEL. Then the deprecation
state: before the date, warning headers; from the date on, the `replacement` answers (with the same
headers) or, without one, 410 MODEL_DEPRECATED.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from tollway.core.clock import utcnow
from tollway.errors import ErrorCode, TollwayError

if TYPE_CHECKING:
    from tollway.core.catalog import Catalog, CatalogConfig, CatalogModel


def traits(catalog: Catalog, model_type: str) -> dict[str, str]:
    """trait → model id for one type; the first model in the catalog that claims a trait has it."""
    out: dict[str, str] = {}
    for model in catalog.models.values():
        if model.type == model_type:
            for trait in model.config.traits:
                out.setdefault(trait, model.id)
    return out


def compatibility(catalog: Catalog, model_type: str) -> dict[str, str]:
    """foreign name → model id for one type."""
    out: dict[str, str] = {}
    for name, target in catalog.config.compatibility.items():
        model = catalog.models.get(target)
        if model is not None and model.type == model_type:
            out[name] = target
    for model in catalog.models.values():
        if model.type == model_type:
            for name in model.config.compatible_with:
                out.setdefault(name, model.id)
    return out


def resolve(catalog: Catalog, name: str, model_type: str) -> CatalogModel:
    """A name (no suffix) → the catalog model of `model_type`, or 400 INVALID_MODEL."""
    try:
        model = catalog.resolve(name)
    except TollwayError as exc:
        if exc.code is not ErrorCode.INVALID_MODEL:
            raise
        target = traits(catalog, model_type).get(name) or compatibility(catalog, model_type).get(name)
        if target is None:
            raise
        return catalog.models[target]
    if model.type != model_type:
        raise TollwayError(
            ErrorCode.INVALID_MODEL,
            f"{model.id!r} is a {model.type} model; this route needs a {model_type} model.",
            param="model",
        )
    return model


def parse_date(value: str) -> date:
    return date.fromisoformat(value[:10])


def deprecation(
    catalog: Catalog, model: CatalogModel, today: date | None = None
) -> tuple[CatalogModel, dict[str, str]]:
    """(the model that answers, deprecation headers) for a resolved model."""
    config = model.config.deprecation
    if config is None:
        return model, {}
    when = parse_date(config.date)
    today = today or utcnow().date()
    replacement = config.replacement
    if today < when:
        message = f"{model.id} is deprecated and will be retired on {when.isoformat()}"
        if replacement:
            message += f"; use {replacement}"
        return model, _headers(message + ".", when)
    if not replacement:
        raise TollwayError(
            ErrorCode.MODEL_DEPRECATED,
            f"{model.id!r} was retired on {when.isoformat()}. GET /v1/models lists the models you can use.",
            param="model",
        )
    successor = catalog.models[replacement]
    message = f"{model.id} was retired on {when.isoformat()}; {successor.id} answered instead."
    return successor, _headers(message, when)


def _headers(message: str, when: date) -> dict[str, str]:
    return {
        "x-venice-model-deprecation-warning": message,
        "x-venice-model-deprecation-date": when.isoformat(),
        "x-tollway-model-deprecation-warning": message,
        "x-tollway-model-deprecation-date": when.isoformat(),
    }


def problems(config: CatalogConfig) -> list[str]:
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
