"""Whether a `text.format` json_schema is a JSON Schema at all, checked before anything is held.

Not a full meta-schema validation (no validator library is a dependency): the keywords that shape
structured output must have their JSON Schema types, recursively, so that a schema an upstream
would refuse after the hold (or ignore, answering prose) is a 400 naming the keyword instead.
"""

from __future__ import annotations

from typing import Any

from tollway.errors import ErrorCode, TollwayError

TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains")
MAX_DEPTH = 32


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, f"Not a valid JSON Schema: {message}", param=param)


def check(schema: Any, param: str, depth: int = 0) -> None:
    """A 400 naming the first keyword whose value is not what JSON Schema says it is."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _bad("a schema is an object (or true/false).", param)
    if depth > MAX_DEPTH:
        raise _bad(f"nested deeper than {MAX_DEPTH}.", param)
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if not all(isinstance(k, str) and k in TYPES for k in kinds) or kind == []:
        raise _bad(f"`type` must be one of {sorted(TYPES)}, or a list of them.", f"{param}.type")
    required = schema.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise _bad("`required` is a list of property names.", f"{param}.required")
    enum = schema.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise _bad("`enum` is a list.", f"{param}.enum")
    for key in _SCHEMA_MAPS:
        if key in schema:
            value = schema[key]
            if not isinstance(value, dict):
                raise _bad(f"`{key}` maps names to schemas.", f"{param}.{key}")
            for name, sub in value.items():
                check(sub, f"{param}.{key}.{name}", depth + 1)
    for key in _SCHEMA_LISTS:
        if key in schema:
            value = schema[key]
            if not isinstance(value, list) or not value:
                raise _bad(f"`{key}` is a non-empty list of schemas.", f"{param}.{key}")
            for i, sub in enumerate(value):
                check(sub, f"{param}.{key}.{i}", depth + 1)
    for key in _SCHEMA_ONE:
        if key in schema:
            check(schema[key], f"{param}.{key}", depth + 1)
    ref = schema.get("$ref")
    if ref is not None and not isinstance(ref, str):
        raise _bad("`$ref` is a string.", f"{param}.$ref")
