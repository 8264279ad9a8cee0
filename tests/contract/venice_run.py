"""Send Venice's documented requests to a real Tollway and check each answer against the document.

Per operation: the example request (required fields from the document's examples/defaults/enums), one
variant per value of each top-level enum of its body, an invalid body (the wrong type for every required
field), and, where the document requires a key, the example without one. Each answer is checked with
the document's schema for its status and content type (venice_spec.schema_errors). `served` is whether
Tollway's own /openapi.json lists the route under /v1 (every /v1 route is also served under /api/v1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from tests.contract.venice_spec import (
    FILL_INS,
    MODELS,
    Operation,
    deref,
    document,
    example_of,
    operations,
    png_bytes,
    schema_errors,
    top_enums,
    wav_bytes,
)

PREFIX = "/api/v1"
SIWX_CHAIN_ID = 8453  # Base, the conformance server's TOLLWAY_CHAIN_ID (its default)
BINARY_FIELDS = {"image": png_bytes, "file": wav_bytes, "audio": wav_bytes}


@dataclass
class Probe:
    label: str  # "example", "enum format=webp", "bad body", "no key"
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    multipart: bool = False
    keyed: bool = True


@dataclass
class Answer:
    operation: str
    label: str
    status: int  # 0: the connection dropped
    content_type: str
    problems: list[str]  # of the answer's shape
    refused: str  # why the document's own example request got a 4xx ("" when it did not)

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def ok(self) -> bool:
        return not self.problems and not self.refused

    @property
    def failures(self) -> list[str]:
        return [*self.problems, *([self.refused] if self.refused else [])]


@dataclass
class Context:
    """What a run needs: the server, the keys, and ids earlier answers handed out (queue ids, key ids)."""

    url: str
    inference_key: str
    admin_key: str
    found: dict[str, str] = field(default_factory=dict)
    # The wallet the x402 read routes are asked about, signed in with SIGN-IN-WITH-X (siwx): its key.
    wallet_key: str = ""


def _request_schema(op: Operation) -> tuple[str, dict[str, Any]] | None:
    content = op.op.get("requestBody", {}).get("content", {})
    for media in ("application/json", "multipart/form-data"):
        if media in content:
            return media, content[media].get("schema", {})
    return None


def _body(op: Operation, schema: dict[str, Any], ctx: Context) -> dict[str, Any]:
    body = example_of(schema)
    body = dict(body) if isinstance(body, dict) else {}
    for name in deref(schema).get("required", []):
        if name in FILL_INS and (name not in body or body[name] in ("x", ["x"], [{}], {})):
            body[name] = FILL_INS[name]
    # The document's image examples are a truncated PNG and a URL on example.com: a real image instead.
    for name in ("image", "images"):
        if name in body:
            body[name] = FILL_INS[name]
    if "image_url" in body:
        del body["image_url"]
        body["image"] = FILL_INS["image"]
    if "model" in deref(schema).get("properties", {}) and op.path in MODELS:
        body["model"] = MODELS[op.path]
    if op.path == "/augment/scrape":  # only public pages may be fetched, and the run may be offline:
        body["url"] = "http://192.0.2.1/"  # TEST-NET-1, never public: the same refusal on any machine
    if op.path == "/image/multi-edit":  # its model is `modelId` (the document's default is Venice's)
        body["modelId"] = MODELS[op.path]
    if op.path == "/chat/completions":
        body["max_tokens"] = FILL_INS["max_tokens"]
    if "queue_id" in body:
        body["queue_id"] = ctx.found.get(op.path.split("/")[1] + "_queue_id", body["queue_id"])
    if op.path == "/api_keys" and op.method == "patch":
        body["id"] = ctx.found.get("new_key_id", body.get("id", "x"))
    return body


def _query(op: Operation, ctx: Context) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for param in op.op.get("parameters", []):
        if param.get("in") == "query" and param.get("required"):
            query[param["name"]] = example_of(param.get("schema", {}))
    if op.path == "/api_keys" and op.method == "delete":
        query["id"] = ctx.found.get("new_key_id", "x")
    return query


def probes(op: Operation, ctx: Context) -> list[Probe]:
    request = _request_schema(op)
    multipart = bool(request and request[0] == "multipart/form-data")
    body = _body(op, request[1], ctx) if request else None
    found = [Probe("example", _query(op, ctx), body, multipart)]
    if request:
        for name, values in top_enums(request[1]).items():
            found += [
                Probe(f"enum {name}={v}", _query(op, ctx), {**(body or {}), name: v}, multipart)
                for v in values
            ]
        required = deref(request[1]).get("required", [])
        if required and not multipart:
            found.append(Probe("bad body", _query(op, ctx), {name: {"not": "valid"} for name in required}))
    if op.op.get("security", document().get("security")):  # a key is required, or optional
        found.append(Probe("no key", _query(op, ctx), body, multipart, keyed=False))
    return found


def _wallet(ctx: Context) -> str:
    from eth_account import Account

    return str(Account.from_key(ctx.wallet_key).address)


def _signs_in(op: Operation) -> bool:
    """The operation takes Venice's wallet sign-in (the x402 read routes), not a key."""
    return any(
        p.get("in") == "header" and p.get("name") == "SIGN-IN-WITH-X" for p in op.op.get("parameters", [])
    )


def _path(op: Operation, ctx: Context) -> str:
    path = op.path
    for param in op.op.get("parameters", []):
        if param.get("in") == "path":
            value = ctx.found.get("key_id") if param["name"] == "id" else None
            if param["name"] == "walletAddress" and ctx.wallet_key:  # the document's example is a placeholder
                value = _wallet(ctx)
            path = path.replace("{" + param["name"] + "}", str(value or example_of(param.get("schema", {}))))
    return PREFIX + path


def send(op: Operation, probe: Probe, ctx: Context) -> httpx2.Response | None:
    headers = {}
    if probe.keyed and _signs_in(op) and ctx.wallet_key:
        from eth_account import Account

        from tests.fakes.chain.eip3009_chain import siwx_header

        host = ctx.url.split("://", 1)[1]
        headers["SIGN-IN-WITH-X"] = siwx_header(Account.from_key(ctx.wallet_key), host, SIWX_CHAIN_ID)
    elif probe.keyed:
        admin = op.path.startswith(("/api_keys", "/billing"))
        headers["authorization"] = f"Bearer {ctx.admin_key if admin else ctx.inference_key}"
    kwargs: dict[str, Any] = {"params": probe.query, "headers": headers, "timeout": 180}
    if probe.multipart and isinstance(probe.body, dict):
        files = {k: (f"{k}.bin", make()) for k, make in BINARY_FIELDS.items() if k in probe.body}
        if op.path == "/augment/text-parser":  # a document, not the audio file other `file` fields take
            files["file"] = ("notes.txt", b"Meeting notes: ship the parser on Tuesday.\n")
        data = {k: str(v) for k, v in probe.body.items() if k not in files}
        kwargs |= {"files": files, "data": data}
    elif probe.body is not None:
        kwargs["json"] = probe.body
    try:
        return httpx2.request(op.method.upper(), ctx.url + _path(op, ctx), **kwargs)
    except httpx2.HTTPError:
        return None


def refused(op: Operation, probe: Probe, response: httpx2.Response) -> str:
    """Why the document's example request was refused, if it was: it is built from the document, so
    it must be served. A 404 of an operation on a path parameter is the document's example id being
    absent here, and stays allowed; so is the 4xx of an operation the document retired (no 2xx)."""
    path_param = any(p.get("in") == "path" for p in op.op.get("parameters", []))
    if response.status_code == 402 and op.op.get("x-payment-info"):
        return ""  # a paid operation (x402) asked without a payment: its 402 is the document's requirements
    if probe.label == "no key" and not op.needs_key and 400 <= response.status_code < 500:
        return f"the document lets anyone call this, but a keyless call got: {response.text[:200]}"
    if probe.label != "example" or not 400 <= response.status_code < 500:
        return ""
    if response.status_code == 404 and path_param:
        return ""
    if (
        not any(status.startswith("2") for status in op.responses())
        and str(response.status_code) in op.responses()
    ):
        return ""  # a retired operation (billing/usage): the document's answer is its 4xx
    return f"the document's example was refused: {response.text[:200]}"


def check(op: Operation, response: httpx2.Response) -> list[str]:
    """What is wrong with the answer's shape, by the document: status, content type, body schema."""
    documented = op.responses().get(str(response.status_code))
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    problems: list[str] = []
    if documented is None:
        problems.append(f"status {response.status_code} not documented")
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/StandardError"}}}
    else:
        content = documented.get("content", {})
    if content and media not in content:
        problems.append(f"content type {media or '(none)'} not in {sorted(content)}")
        return problems
    schema = content.get(media, {}).get("schema")
    if media == "application/json" and schema is not None:
        try:
            problems += schema_errors(schema, response.json())
        except json.JSONDecodeError:
            problems.append("body is not JSON")
    elif not response.content:
        problems.append("empty body")
    return problems


def remember(op: Operation, response: httpx2.Response, ctx: Context) -> None:
    """Ids later operations need: a queued job's id, a created key's id, the caller's key id."""
    if not response.is_success or "json" not in response.headers.get("content-type", ""):
        return
    body = response.json()
    if op.path.endswith("/queue") and isinstance(body, dict) and "queue_id" in body:
        ctx.found[op.path.split("/")[1] + "_queue_id"] = str(body["queue_id"])
    if op.path == "/api_keys" and isinstance(body, dict):
        data = body.get("data")
        if op.method == "post" and isinstance(data, dict):
            ctx.found["new_key_id"] = str(data.get("id"))
        if op.method == "get" and isinstance(data, list) and data:
            ctx.found["key_id"] = str(data[0].get("id"))


# Queues before what reads them; a key is created before it is patched and deleted, deleted last.
def _order(op: Operation) -> int:
    if op.path.endswith("/queue") or (op.path == "/api_keys" and op.method in ("post", "get")):
        return 0
    if op.path.endswith(("/retrieve", "/complete")):
        return 2 if op.path.endswith("/retrieve") else 3
    return 4 if op.method == "delete" else 1


def served_routes(url: str) -> set[str]:
    spec = httpx2.get(f"{url}/openapi.json").json()
    return {f"{m.upper()} {p.removeprefix('/v1')}" for p, item in spec["paths"].items() for m in item}


def run(ctx: Context, on_answer: Callable[[Answer], None] | None = None) -> tuple[set[str], list[Answer]]:
    """Every probe of every served operation, in dependency order: (served operation names, answers)."""
    served = served_routes(ctx.url)
    answers: list[Answer] = []
    for op in sorted((o for o in operations() if _route_name(o) in served), key=_order):
        for probe in probes(op, ctx):
            response = send(op, probe, ctx)
            if response is None:
                answer = Answer(op.name, probe.label, 0, "", ["connection dropped"], "")
            else:
                remember(op, response, ctx)
                answer = Answer(
                    op.name,
                    probe.label,
                    response.status_code,
                    response.headers.get("content-type", ""),
                    check(op, response),
                    refused(op, probe, response),
                )
            answers.append(answer)
            if on_answer:
                on_answer(answer)
    return {op.name for op in operations() if _route_name(op) in served}, answers


def _route_name(op: Operation) -> str:
    path = op.path
    for param in op.op.get("parameters", []):
        if param.get("in") == "path":
            path = path.replace(
                "{" + param["name"] + "}", "{" + ("key_id" if param["name"] == "id" else param["name"]) + "}"
            )
    return f"{op.method.upper()} {path}"


def figures(served: set[str], answers: list[Answer]) -> dict[str, int]:
    successes = [a for a in answers if a.success]
    errors = [a for a in answers if not a.success]
    return {
        "operations": len(operations()),
        "served": len(served),
        "requests": len(answers),
        "successes": len(successes),
        "successes_valid": sum(not a.problems for a in successes),
        "errors": len(errors),
        "errors_in_shape": sum(not a.problems for a in errors),
        "server_errors": sum(a.status == 0 or a.status >= 500 for a in answers),
        # Requests built from the document (its example, each enum value) that got a 4xx.
        "documented_requests_refused": sum(
            400 <= a.status < 500 and a.label.startswith(("example", "enum")) for a in answers
        ),
    }


def spec_version() -> str:
    return str(document()["info"]["version"])
