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

from tollway.base.clock import utcnow
from tollway.core.catalog.catalog import parse_date
from tollway.errors import ErrorCode, TollwayError

if TYPE_CHECKING:
    from tollway.core.catalog.catalog import Catalog, CatalogModel


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
