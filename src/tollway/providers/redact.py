"""An upstream's own explanation of a refused request, made safe to pass on to the client.

Only a refusal (an upstream 400/413/422) is passed on, because the client can act on it ("`temperature`
must be at most 2"). Upstreams echo what they were sent, so before it leaves this server the text loses:
every credential this server sent the upstream (the values of its request headers), the upstream's URL
and host, any other URL or IPv4 address, and anything shaped like an API key or bearer token. It is
also cut to a few hundred characters of one line.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2
import orjson

MAX_CHARS = 300
# Request headers that carry nothing secret; every other header value this server sent is scrubbed.
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "host",
        "user-agent",
        "anthropic-version",
        "idempotency-key",
        "traceparent",
        "tracestate",
    }
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{}]+")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b")
_KEYS = re.compile(
    r"\bBearer\s+\S+"  # an Authorization value
    r"|\b(?:sk|pk|rk|gsk|xai|key|api|tok)[-_][A-Za-z0-9_\-.*]{6,}"  # sk-…, sk-proj-…, key_…
    r"|\bAIza[0-9A-Za-z_\-]{10,}"  # Google API keys
    r"|\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}",  # long opaque tokens
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


def _message(body: Any) -> str | None:
    """The human part of an error body, in any of the shapes upstreams answer in."""
    if isinstance(body, list) and body:  # Gemini's stream endpoint answers [{"error": ...}]
        body = body[0]
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])  # OpenAI, Anthropic, Gemini
    if isinstance(error, str):
        return error  # Ollama
    for name in ("message", "detail"):  # vLLM, FastAPI servers
        if isinstance(body.get(name), str):
            return str(body[name])
    return None


def _secrets(request: httpx2.Request) -> list[str]:
    found = []
    for name, value in request.headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        found.append(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            found.append(token)
    return sorted((s for s in found if len(s) >= 6), key=len, reverse=True)


def scrub(text: str, secrets: list[str], hosts: list[str]) -> str:
    """`text` without the secrets, the hosts, URLs, IPv4 addresses and key-shaped strings; one line."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = _URL.sub("[upstream]", text)
    for host in sorted(hosts, key=len, reverse=True):
        if host:
            text = re.sub(re.escape(host), "[upstream]", text, flags=re.IGNORECASE)
    text = _IPV4.sub("[upstream]", text)
    text = _KEYS.sub("[redacted]", text)
    text = _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def upstream_detail(response: httpx2.Response) -> str | None:
    """The upstream's explanation of its refusal, scrubbed (see the module's docstring); None if none."""
    try:
        message = _message(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        content_type = response.headers.get("content-type", "")
        message = response.text[:2000] if content_type.startswith("text/plain") else None
    if not message:
        return None
    try:
        request = response.request
    except RuntimeError:  # a response built without a request (tests): nothing was sent
        return scrub(message, [], [])
    url = request.url
    hosts = [url.host, f"{url.host}:{url.port}" if url.port else ""]
    return scrub(message, _secrets(request), hosts) or None
