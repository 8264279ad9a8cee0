"""The LLM-ready reference (issue 26): `/llms.txt` and `/llms-full.txt`, after the llms.txt convention.

Both are rendered once at start-up from the live OpenAPI document and the README (`build`), so they say
what this deployment serves and never drift; `tollway docs export DIR` writes the same files, with
openapi.json, for static hosting. `/llms.txt`: the title, a blockquote summary, then sections of links.
`/llms-full.txt`: every documented route with its parameters, body fields, errors and one curl example,
then the README as the guide.

`/docs`: Swagger UI served from this package (no CDN), with an Authorize button for the bearer key. The
assets are swagger-ui-dist 5.35.0 from the npm registry (Apache-2.0; LICENSE and NOTICE beside them in
static/swagger-ui/). The initializer is a file of ours, not inline script: the page's CSP allows only
scripts from this origin.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

router = APIRouter()
METHODS = ("get", "post", "put", "patch", "delete")
README = Path(__file__).resolve().parents[3] / "README.md"


def readme() -> str:
    """The README beside the source tree, or the one packaged as the distribution's description."""
    if README.is_file():
        return README.read_text(encoding="utf-8")
    try:
        return importlib.metadata.metadata("tollway").get_payload() or ""  # type: ignore[attr-defined]
    except importlib.metadata.PackageNotFoundError:
        return ""


# Example values a reader recognises, for the fields most routes share (others: the schema's own).
SAMPLES: dict[str, Any] = {
    "model": "default",
    "messages": [{"role": "user", "content": "Hello"}],
    "prompt": "A lighthouse at dusk",
    "input": "Hello",
}


def anchor(method: str, path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")


def _summary(text: str) -> str:
    """The README's first paragraph after its title, on one line."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    prose = [p for p in paragraphs if not p.startswith(("#", "```", "|", "-"))]
    return " ".join(prose[0].split()) if prose else "A self-hosted, OpenAI-compatible AI API platform."


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in spec.get("paths", {}).items()
        for method, operation in operations.items()
        if method in METHODS
    ]


def llms_txt(spec: dict[str, Any], guide: str) -> str:
    info = spec.get("info", {})
    lines = [f"# {info.get('title', 'Tollway')}", "", f"> {_summary(guide)}", ""]
    lines += [
        f"Version {info.get('version', '')}. Every route is served under /v1 and /api/v1; keys go in "
        "`Authorization: Bearer <key>`. Amounts are USD; every metered answer says what it cost.",
        "",
        "## Docs",
        "",
        "- [Full reference](/llms-full.txt): every route with parameters, errors and an example, then the guide",
        "- [OpenAPI document](/openapi.json): the machine-readable contract",
        "- [Interactive docs](/docs): Swagger UI",
        "- [MCP server](/mcp): the same API as MCP tools (streamable HTTP, bearer key)",
        "",
    ]
    groups: dict[str, list[str]] = {}
    for method, path, operation in _operations(spec):
        tag = (operation.get("tags") or ["other"])[0]
        link = f"- [{method.upper()} {path}](/llms-full.txt#{anchor(method, path)}): {operation.get('summary', '')}"
        groups.setdefault(str(tag), []).append(link)
    for tag in sorted(groups):
        lines += [f"## {tag.capitalize()}", "", *groups[tag], ""]
    headings = re.findall(r"^## (.+)$", guide, flags=re.MULTILINE)
    if headings:
        lines += ["## Optional", ""]
        lines += [f"- [{h}](/llms-full.txt#{anchor('guide', h)}): from the README" for h in headings]
    return "\n".join(lines).rstrip() + "\n"


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        found = spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
        return dict(found)
    return schema


def _type(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    schema = _resolve(spec, schema)
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type(spec, s) for s in schema["anyOf"] if s.get("type") != "null")
    kind = schema.get("type", schema.get("title", "object"))
    if kind == "array":
        return f"array of {_type(spec, schema.get('items', {}))}"
    return str(kind)


def _example_value(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(spec, schema)
    for key in ("example", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example_value(spec, next((s for s in schema["anyOf"] if s.get("type") != "null"), {}))
    kind = schema.get("type")
    return {"integer": 1, "number": 1.0, "boolean": False, "array": [], "object": {}}.get(str(kind), "string")


def _body(spec: dict[str, Any], operation: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return [], None
    media, holder = next(iter(content.items()))
    schema = _resolve(spec, holder.get("schema", {}))
    required = set(schema.get("required", []))
    lines = [f"Body ({media}):", ""]
    for name, prop in schema.get("properties", {}).items():
        need = "required" if name in required else "optional"
        text = _resolve(spec, prop).get("description") or prop.get("description") or ""
        lines.append(f"- `{name}` ({_type(spec, prop)}, {need}) {text}".rstrip())
    properties = schema.get("properties", {})
    example = {n: SAMPLES.get(n, _example_value(spec, properties[n])) for n in properties if n in required}
    return [*lines, ""], example if media == "application/json" else None


def _route(spec: dict[str, Any], method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f'<a id="{anchor(method, path)}"></a>', f"### {method.upper()} {path}", ""]
    lines += [operation.get("summary", ""), ""]
    if operation.get("description"):
        lines += [operation["description"].strip(), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["Parameters:", ""]
        for p in parameters:
            need = "required" if p.get("required") else "optional"
            text = p.get("description", "")
            lines.append(
                f"- `{p['name']}` (in {p['in']}, {_type(spec, p.get('schema', {}))}, {need}) {text}".rstrip()
            )
        lines.append("")
    body_lines, example = _body(spec, operation)
    lines += body_lines
    responses = operation.get("responses", {})
    ok = [
        f"{code} {r.get('description', '')}".strip() for code, r in responses.items() if code.startswith("2")
    ]
    errors = [
        f"{code} {r.get('description', '')}".strip()
        for code, r in responses.items()
        if not code.startswith("2")
    ]
    lines += [
        f"Success: {'; '.join(ok) or 'see the document'}",
        f"Errors: {'; '.join(errors) or 'none documented'}",
        "",
    ]
    curl = f'curl -X {method.upper()} http://127.0.0.1:8000{path} -H "Authorization: Bearer $TOLLWAY_KEY"'
    if example is not None:
        curl += f" -H 'Content-Type: application/json' -d '{json.dumps(example)}'"
    return [*lines, "Example:", "", "```sh", curl, "```", ""]


def llms_full_txt(spec: dict[str, Any], guide: str) -> str:
    info = spec.get("info", {})
    lines = [f"# {info.get('title', 'Tollway')} API reference", "", f"> {_summary(guide)}", ""]
    lines += [str(info.get("description", "")), "", "## Routes", ""]
    for method, path, operation in _operations(spec):
        lines += _route(spec, method, path, operation)
    lines += ["## Guide", ""]
    guide = re.sub(
        r"^## (.+)$",
        lambda m: f'<a id="{anchor("guide", m.group(1))}"></a>\n### {m.group(1)}',
        guide,
        flags=re.M,
    )
    return "\n".join(lines) + "\n" + guide


def build(spec: dict[str, Any], guide: str | None = None) -> dict[str, str]:
    """Both documents, by file name (what the first request for one keeps and `tollway docs export` writes)."""
    text = readme() if guide is None else guide
    return {"llms.txt": llms_txt(spec, text), "llms-full.txt": llms_full_txt(spec, text)}


def _served(request: Request, name: str) -> Response:
    documents: dict[str, str] | None = getattr(request.app.state, "reference", None)
    if documents is None:
        documents = request.app.state.reference = build(request.app.openapi())
    return PlainTextResponse(documents[name], media_type="text/markdown; charset=utf-8")


@router.get("/llms.txt", include_in_schema=False)
async def llms(request: Request) -> Response:
    return _served(request, "llms.txt")


@router.get("/llms-full.txt", include_in_schema=False)
async def llms_full(request: Request) -> Response:
    return _served(request, "llms-full.txt")


SWAGGER_UI_VERSION = "5.35.0"
CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tollway API</title>
<link rel="stylesheet" href="/console/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/console/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/console/static/swagger-init.js"></script></body></html>"""


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> Response:
    return HTMLResponse(PAGE, headers={"content-security-policy": CSP, "cache-control": "no-cache"})
