"""What /openapi.json says about each route: its request body, its success content and its error answers.

Every route decorator takes `**documented(...)`: the body's schema (a pydantic model, published under
components/schemas by runtime/app.py from `BODIES`), the media types of a success, and each error status
with the envelope the route answers in (OpenAI's, Anthropic's, Gemini's or the task API's). Bodies are
parsed by the core, not by FastAPI, so the schemas are documentation that the OpenAPI gate
(tests/contract/test_openapi.py) holds the server to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from tollway.core.money.prices import COST_HEADER
from tollway.dialects.openai import OpenAIError

# Every route can answer these: an oversized body, the failed-request limit, an unexpected error.
COMMON = (413, 429, 500)
KEYED = (400, 401, 403)  # a bad parameter; no key or a bad one; a key of the wrong kind
# A call that spends: the balance or key limit, an Idempotency-Key still running, a retired model, the
# content type, the content policy, and the upstream.
PAID = (*KEYED, 402, 404, 409, 410, 415, 422, 502, 503, 504)
BY_ID = (*KEYED, 404)  # a route that names something by id
COUNTING = (*KEYED, 404, 410, 415)  # free token counting: a model that must exist and be callable
WRITES = (*BY_ID, 415)  # a route with a JSON body: the operator's and an account admin's
MEANING = {
    400: "The request is malformed: `param` names the field at fault.",
    401: "No key, or an unknown, revoked or expired one.",
    402: "The call would exceed the balance or the key's consumption limit.",
    403: "The key may not use this route or this model (scope, content tier, age verification).",
    404: "Not found, or not this account's.",
    409: "A request with this Idempotency-Key is still running, or the job is not finished yet.",
    410: "The model was retired.",
    413: "The body, or a file in it, is too large.",
    415: "The body's Content-Type is not one this route reads.",
    422: "Blocked by the content policy.",
    429: "Rate limited, or too many failed requests from this key: retry after `Retry-After`.",
    451: "Blocked by the content policy (the task API's status for it).",
    500: "Unexpected server error: retry, and quote the request id if it persists.",
    502: "The upstream provider failed or answered something unreadable.",
    503: "Temporarily unavailable (e.g. the shared rate limiter cannot be reached): retry with backoff.",
    504: "The upstream provider did not answer in time.",
}
JSON = "application/json"
FORM = "multipart/form-data"
JSON_OBJECT: dict[str, Any] = {"type": "object"}
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
# A text/event-stream answer: each event's `data` is one JSON chunk (or OpenAI's final `[DONE]`).
SSE: dict[str, Any] = {
    "itemSchema": {
        "type": "object",
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}},
        "required": ["data"],
    }
}
# Request body models by schema name, published under components/schemas (runtime/app.py).
BODIES: dict[str, type[BaseModel]] = {}
COST_HEADER_DOC = {
    "description": "What the ledger charged for this call, USD with 9 decimals; the same figure as the body's "
    "`usage.cost` (a JSON number). Absent on streams: their final chunk carries `usage.cost`.",
    "schema": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{9}$"},
}


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to `model`'s schema, which runtime/app.py publishes under components/schemas."""
    known = BODIES.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two request models are named {model.__name__}: rename one")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_only() -> dict[str, Any]:
    return {JSON: {"schema": JSON_OBJECT}}


def documented(
    *,
    errors: Iterable[int],
    envelope: type[BaseModel] = OpenAIError,
    body: type[BaseModel] | None = None,
    media: Iterable[str] = (JSON,),
    files: Iterable[str] = (),
    ok: Mapping[str, dict[str, Any]] | None = None,
    status: int = 200,
    charged: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator that document it whole.

    `body`: the request body's model, taken as each of `media` (JSON, FORM); in a form, the `files`
    fields are uploads. `ok`: a success's media types and schemas (a JSON object by default).
    `errors`: the error statuses besides COMMON's, each in `envelope`. `charged`: a buffered success
    says what it cost in the `x-tollway-cost-usd` header (and `usage.cost` where the body has usage).
    """
    responses: dict[int | str, Any] = {
        status: {"description": "Success", "content": dict(ok) if ok is not None else json_only()}
    }
    if charged:
        responses[status]["headers"] = {COST_HEADER: COST_HEADER_DOC}
    for code in sorted({*errors, *COMMON}):
        responses[code] = {"description": MEANING[code], "model": envelope}
    extra: dict[str, Any] = {}
    if body is not None:
        content = {kind: {"schema": ref(body) if kind == JSON else _form(body, files)} for kind in media}
        extra["requestBody"] = {"required": True, "content": content}
    # Response: FastAPI would otherwise document every success as application/json.
    return {"status_code": status, "response_class": Response, "responses": responses, "openapi_extra": extra}


def _form(model: type[BaseModel], files: Iterable[str]) -> dict[str, Any]:
    """`model` as multipart/form-data parts; the named ones are file uploads."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: a form's model must be flat")
    uploads = set(files)
    properties = {name: BINARY if name in uploads else part for name, part in schema["properties"].items()}
    return {"type": "object", "properties": properties, "required": schema.get("required", [])}
