"""Venice's error shape, the one every error under /api/v1 answers in (issue 23).

Venice's OpenAPI document (tests/contract/venice/) has two: `StandardError` `{"error": "<message>"}`
and, for input that failed validation, `DetailedError` `{"error", "details"}`, whose `details` is a
zod-style tree: `{"_errors": [], "<field>": {"_errors": ["<message>"]}}`. Neither closes its properties,
so the stable `code` and the `request_id` that /v1's OpenAI envelope carries ride along: one error has
the same code and request id on both prefixes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tollway.errors import TollwayError


class VeniceError(BaseModel):
    """The shape as /openapi.json documents it for /api/v1 (`details` only on validation errors)."""

    error: str
    code: str
    request_id: str
    details: dict[str, Any] | None = None


def details_of(param: str, message: str) -> dict[str, Any]:
    """The zod-style tree naming the field `param` (dotted for nested fields, `[0]` for list items)."""
    tree: dict[str, Any] = {"_errors": []}
    node = tree
    for part in param.replace("[", ".").replace("]", "").split("."):
        if part:
            node = node.setdefault(part, {"_errors": []})
    node["_errors"].append(message)
    return tree


def venice_error(err: TollwayError, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"error": err.message, "code": err.code.name, "request_id": request_id}
    if err.param and err.status in (400, 422):  # DetailedError is for input; a 404's param is not
        body["details"] = details_of(err.param, err.message)
    body.update({key: value for key, value in err.extra.items() if key not in body})
    return body
