"""Venice's OpenAPI document (shared/spec/venice-openapi-20260821.yaml) as the conformance test reads it.

Two jobs: turn the document's OpenAPI 3.0 schemas into JSON Schema a well-kept validator (jsonschema_rs,
Draft 4, which OpenAPI 3.0's schema object extends) can check answers against, and build requests from
the document's own examples, defaults and enums. Where the document gives no example for a required
field (chat `messages`, uploaded files), FILL_INS says what is sent instead; the model is always one the
conformance server's catalog (catalog/default.yaml's embedded models; chat on a fake upstream) serves for that route.
"""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SPEC_NAME = "venice-openapi-20260821.yaml"
# The document is an outside contract: a copy lives beside the tests so `make test` never needs /work/shared.
SPEC_PATH = REPO / "tests" / "contract" / "venice" / SPEC_NAME
METHODS = ("get", "post", "put", "patch", "delete")

# The model each route is asked for: the conformance server's embedded engine of that kind.
MODELS = {
    "/chat/completions": "fake-chat",  # the fake upstream: venice_server.py says why
    "/responses": "fake-chat",
    "/embeddings": "minilm-l6-v2",
    "/image/generate": "local-procedural",
    "/images/generations": "local-procedural",
    "/image/upscale": "local-upscaler",
    "/image/edit": "local-image-edit",
    "/image/multi-edit": "local-image-edit",
    "/image/background-remove": "local-background-remover",
    "/audio/speech": "local-tts",
    "/audio/transcriptions": "local-whisper-tiny-en",
    "/video/queue": "local-procedural-video",
    "/video/quote": "local-procedural-video",
    "/video/retrieve": "local-procedural-video",
    "/video/complete": "local-procedural-video",
    "/audio/queue": "local-procedural-music",
    "/audio/quote": "local-procedural-music",
    "/audio/retrieve": "local-procedural-music",
    "/audio/complete": "local-procedural-music",
}


class _Loader(yaml.SafeLoader):
    """YAML 1.2's core schema, as OpenAPI tools read the document: no implicit timestamps (its date
    examples are strings on the wire), and only true/false are booleans (`on`/`off` are the strings of
    `enable_web_search`'s enum, not YAML 1.1's booleans)."""


_Loader.yaml_implicit_resolvers = {
    key: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(SPEC_PATH.read_text(), Loader=_Loader)
    return loaded


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    op: dict[str, Any] = field(hash=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def needs_key(self) -> bool:
        security = self.op.get("security", document().get("security", []))
        return bool(security) and {} not in security

    def responses(self) -> dict[str, Any]:
        return dict(self.op.get("responses", {}))


def operations() -> list[Operation]:
    return [
        Operation(method, path, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def deref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# -- OpenAPI 3.0 schema → JSON Schema Draft 4 --


def to_json_schema(node: Any) -> Any:
    """`nullable: true` becomes a `null` alternative; everything else is Draft 4 already."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items() if key not in ("example", "nullable")}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _components() -> dict[str, Any]:
    return {"schemas": to_json_schema(document()["components"]["schemas"])}


def validator(schema: dict[str, Any]) -> jsonschema_rs.Draft4Validator:
    return _validator(json.dumps(schema, sort_keys=True))


@cache
def _validator(schema_json: str) -> jsonschema_rs.Draft4Validator:
    root = {"allOf": [to_json_schema(json.loads(schema_json))], "components": _components()}
    return jsonschema_rs.Draft4Validator(root)


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """What the validator finds wrong with `instance`, as short lines (the first few)."""
    found = [
        f"{'/'.join(map(str, e.instance_path)) or '.'}: {e.message}"
        for e in validator(schema).iter_errors(instance)
    ]
    return [line[:300] for line in found[:5]]


def documented(name: str, response: Any) -> Any:
    """An answer's JSON body (an httpx2 response) after checking it against the document's schema for
    operation `name` (e.g. "GET /characters") and the answer's status."""
    [op] = [o for o in operations() if o.name == name]
    content = op.responses()[str(response.status_code)]["content"]["application/json"]
    body = response.json()
    assert schema_errors(content["schema"], body) == [], body
    return body


# -- example values --


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 16000)
    return buffer.getvalue()


# Required fields the document gives no usable example for, and what is sent instead (the fill-ins
# are the smallest value of the documented type). Chat is capped at 8 tokens: shape, not prose, is tested.
FILL_INS: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Say hi."}],
    "input": "Hello.",
    "image": "data:image/png;base64," + base64.b64encode(png_bytes()).decode(),
    "images": ["data:image/png;base64," + base64.b64encode(png_bytes()).decode()],
    "max_tokens": 8,
}


def example_of(schema: dict[str, Any], name: str = "") -> Any:
    """A value for `schema`: its example, default, first enum value, or the smallest of its type."""
    schema = deref(schema)
    for key in ("example", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_of(schema[key][0], name)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            p: example_of(s, p)
            for p, s in schema.get("properties", {}).items()
            if p in schema.get("required", [])
        }
    if kind == "array":
        return [example_of(schema.get("items", {}), name)]
    return {"integer": 1, "number": 1, "boolean": False}.get(str(kind), "x")


def top_enums(schema: dict[str, Any]) -> dict[str, list[Any]]:
    """The request body's top-level properties with an enum (not `model`): each value is a variant."""
    enums: dict[str, list[Any]] = {}
    for name, prop in deref(schema).get("properties", {}).items():
        values = deref(prop).get("enum")
        if values and name != "model" and len(values) <= 12:
            enums[name] = list(values)
    return enums
