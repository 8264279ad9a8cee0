"""Every request model's booleans are strict: `"stream": "yes"` must be a 400, never a coerced true.

A new request model with a plain `bool` field fails here (use pydantic's StrictBool, or strict=True)."""

from __future__ import annotations

import importlib
import pkgutil
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.types import Strict

import tollway.api
from tollway.core.access import keys
from tollway.core.inference import schemas
from tollway.dialects.anthropic import request as anthropic_request
from tollway.dialects.gemini import request as gemini_request


def _request_modules() -> list[types.ModuleType]:
    api = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(tollway.api.__path__, "tollway.api.")
        if not info.ispkg
    ]
    return [*api, schemas, keys, anthropic_request, gemini_request]


def _lax_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return base is bool and not any(isinstance(m, Strict) and m.strict for m in metadata)
    if origin in (Union, types.UnionType, list, tuple, dict):
        return any(_lax_bool(arg) for arg in get_args(annotation))
    return False


def test_no_request_model_coerces_a_boolean() -> None:
    lax = []
    for module in _request_modules():
        for model in vars(module).values():
            if (
                not (isinstance(model, type) and issubclass(model, BaseModel))
                or model.__module__ != module.__name__
            ):
                continue
            if model.model_config.get("strict"):
                continue
            for name, field in model.model_fields.items():
                strict = any(isinstance(m, Strict) and m.strict for m in field.metadata)
                if not strict and _lax_bool(field.annotation):
                    lax.append(f"{model.__module__}.{model.__name__}.{name}")
    assert not lax, f"plain bool fields in request models (use StrictBool): {lax}"
