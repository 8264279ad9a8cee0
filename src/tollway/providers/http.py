"""What every HTTP upstream adapter shares: the pooled client, and failures mapped to UpstreamError.

An upstream's own error text is passed on only for a refused request (providers/redact.py scrubs it:
it may echo our key, as OpenAI does, or our URL); the meaning of every status is providers/base.py
`classify`, the same for every provider.
"""

from __future__ import annotations

import os
from typing import Any

import httpx2
import orjson

from tollway.base.config import ProviderConfig
from tollway.base.upstream_transport import AiohttpTransport
from tollway.providers.base import UpstreamError, classify
from tollway.providers.redact import upstream_detail
from tollway.telemetry import tracing


def secret(config: ProviderConfig) -> str | None:
    """The upstream key: only ever from the environment variable the catalog names."""
    return os.environ.get(config.api_key_env) if config.api_key_env else None


def retry_after(response: httpx2.Response) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None  # an HTTP date: rare upstream, treated as "no hint"
    return None


def client(config: ProviderConfig, headers: dict[str, str], *, timeout: float) -> httpx2.AsyncClient:
    if not config.base_url:
        raise ValueError(f"provider {config.id!r} needs a base_url")
    return httpx2.AsyncClient(
        base_url=config.base_url.rstrip("/"),
        headers={"content-type": "application/json", **headers, **config.headers},
        timeout=httpx2.Timeout(config.timeout_seconds or timeout, connect=10.0),
        # aiohttp's pool (base/upstream_transport.py: httpx2's own probes every idle connection per request).
        # Idle connections are dropped after 4 s, before the 5 s after which uvicorn (and many servers
        # like it) close theirs: reusing a connection the server is closing at that moment fails the
        # call with a dropped connection.
        transport=AiohttpTransport(max_connections=512, keepalive_expiry=4.0),
        event_hooks={"request": [_trace_context]},
    )


async def _trace_context(request: httpx2.Request) -> None:
    """Every upstream request carries the current trace (telemetry/tracing.py); nothing when tracing is off."""
    if headers := tracing.outgoing_headers():
        request.headers.update(headers)


def status_failure(provider_id: str, response: httpx2.Response) -> UpstreamError:
    """A non-200 answer (its body read), classified (providers/base.py `classify`)."""
    kind = classify(response.status_code)
    return UpstreamError(
        f"provider {provider_id!r} answered HTTP {response.status_code}",
        status=response.status_code,
        retryable=kind in ("transient", "rate_limited"),
        retry_after=retry_after(response),
        kind=kind,
        detail=upstream_detail(response) if kind == "rejected" else None,
    )


def transport_failure(provider_id: str, exc: httpx2.HTTPError) -> UpstreamError:
    timeout = isinstance(exc, httpx2.TimeoutException)
    kind = "timed out" if timeout else f"failed ({type(exc).__name__})"
    return UpstreamError(f"provider {provider_id!r} {kind}", timeout=timeout)


def cut_failure(provider_id: str) -> UpstreamError:
    return UpstreamError(f"provider {provider_id!r} ended the stream before it was complete", retryable=False)


async def post_json(
    http: httpx2.AsyncClient, provider_id: str, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    try:
        response = await http.post(path, content=orjson.dumps(body))
    except httpx2.HTTPError as exc:
        raise transport_failure(provider_id, exc) from None
    if response.status_code != 200:
        raise status_failure(provider_id, response)
    try:
        result = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"provider {provider_id!r} sent invalid JSON") from None
    if not isinstance(result, dict):
        raise UpstreamError(f"provider {provider_id!r} sent an unexpected body")
    return result


def load_event(provider_id: str, data: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"provider {provider_id!r} sent a malformed stream event", retryable=False
        ) from None
    if not isinstance(value, dict):
        raise UpstreamError(f"provider {provider_id!r} sent a malformed stream event", retryable=False)
    return value
