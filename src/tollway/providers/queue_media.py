"""Upstream queue/poll media APIs (Venice `video/queue|retrieve`, NightVeil `audio|video/queue|retrieve`).

submit → the upstream's queue id; poll → a state (queued, processing, completed, failed) and, when
completed, the media bytes: either the retrieve answer itself (a `video/*` or `audio/*` body, as
Venice answers) or a JSON status with a download URL, fetched here. The caller copies the bytes into
Tollway's media store before it shows COMPLETED: no upstream URL ever reaches a client.

Submit carries `Idempotency-Key: <job id>`: a runner that died between the upstream's answer and
persisting the queue id re-submits the same key and gets the same job, never a second one. Paths and
poll timing are configured per provider (catalog `providers[].jobs`, core/catalog/catalog.py QueueApiConfig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2
import orjson

from tollway.base.config import ProviderConfig, QueueApiConfig
from tollway.providers import http
from tollway.providers.base import UpstreamError

FAILED = frozenset({"FAILED", "ERROR", "CANCELLED", "CANCELED", "REJECTED"})
COMPLETED = frozenset({"COMPLETED", "SUCCEEDED", "SUCCESS", "DONE"})
QUEUED = frozenset({"QUEUED", "PENDING", "WAITING"})
FILTER_CODES = frozenset({"CONTENT_FILTERED", "CONTENT_BLOCKED", "CONTENT_POLICY_VIOLATION"})
MAX_MEDIA_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Polled:
    state: str  # queued | processing | completed | failed
    progress: int = 0
    eta_seconds: int | None = None
    data: bytes | None = None
    content_type: str | None = None
    error_code: str | None = None  # failed: CONTENT_FILTERED or UPSTREAM_FAILED
    duration: float | None = None  # completed: the seconds the upstream reports it produced


class QueueMediaClient:
    """One upstream's queue API; the HTTP client is pooled per provider."""

    def __init__(self, config: ProviderConfig, *, timeout: float) -> None:
        self.id = config.id
        self.config = config
        self.api = config.jobs or QueueApiConfig()
        headers: dict[str, str] = {}
        key = http.secret(config)
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._origin = urlsplit(config.base_url or "").netloc
        self._http = http.client(config, headers, timeout=timeout)

    def _paths(self, kind: str) -> tuple[str, str]:
        if kind == "audio":
            return self.api.audio_queue, self.api.audio_retrieve
        return self.api.video_queue, self.api.video_retrieve

    async def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        try:
            response = await self._http.post(
                "/" + path.lstrip("/"), content=orjson.dumps(body), headers=headers
            )
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if response.status_code != 200:
            raise http.status_failure(self.id, response)
        return response

    async def submit(
        self, kind: str, upstream_model: str, params: dict[str, Any], idempotency_key: str
    ) -> str:
        queue, _ = self._paths(kind)
        body = {**params, "model": upstream_model}
        response = await self._post(queue, body, {"idempotency-key": idempotency_key})
        data = _json(self.id, response)
        queue_id = data.get("queue_id") or data.get("id") or data.get("task_id")
        if not isinstance(queue_id, str) or not queue_id:
            raise UpstreamError(f"provider {self.id!r} answered without a queue id", retryable=False)
        return queue_id

    async def poll(self, kind: str, upstream_model: str, upstream_id: str) -> Polled:
        _, retrieve = self._paths(kind)
        response = await self._post(retrieve, {"model": upstream_model, "queue_id": upstream_id})
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith(("video/", "audio/")):
            return Polled("completed", 100, 0, response.content, content_type)
        data = _json(self.id, response)
        status = str(data.get("status") or "").upper()
        progress = _int(data.get("progress"))
        eta = _eta(data)
        if status in FAILED:
            error = data.get("error")
            code = error.get("code") if isinstance(error, dict) else data.get("code")
            failed_code = "CONTENT_FILTERED" if str(code).upper() in FILTER_CODES else "UPSTREAM_FAILED"
            return Polled("failed", progress or 0, None, error_code=failed_code)
        if status in COMPLETED:
            url = next(
                (data[k] for k in ("download_url", "url", "video_url", "audio_url") if data.get(k)), None
            )
            if not isinstance(url, str):
                raise UpstreamError(f"provider {self.id!r} completed without media", retryable=True)
            media, media_type = await self._fetch(url)
            duration = data.get("duration")
            return Polled(
                "completed",
                100,
                0,
                media,
                media_type,
                duration=float(duration) if isinstance(duration, int | float) else None,
            )
        return Polled("queued" if status in QUEUED else "processing", progress or 0, eta)

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        absolute = urljoin(str(self._http.base_url) + "/", url)
        same_origin = urlsplit(absolute).netloc == self._origin
        try:
            if same_origin:  # our key goes only to the upstream's own host
                response = await self._http.get(absolute)
            else:
                async with httpx2.AsyncClient(timeout=self._http.timeout) as plain:
                    response = await plain.get(absolute)
        except httpx2.HTTPError as exc:
            raise http.transport_failure(self.id, exc) from None
        if response.status_code != 200:
            raise http.status_failure(self.id, response)
        if len(response.content) > MAX_MEDIA_BYTES:
            raise UpstreamError(f"provider {self.id!r} sent media larger than the cap", retryable=False)
        content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
        return response.content, content_type

    async def aclose(self) -> None:
        await self._http.aclose()


def _json(provider_id: str, response: httpx2.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"provider {provider_id!r} sent invalid JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"provider {provider_id!r} sent an unexpected answer")
    return data


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _eta(data: dict[str, Any]) -> int | None:
    eta = _int(data.get("eta_seconds"))
    if eta is not None:
        return eta
    average, elapsed = _int(data.get("average_execution_time")), _int(data.get("execution_duration"))
    if average is not None and elapsed is not None:  # Venice: milliseconds
        return max(0, (average - elapsed) // 1000)
    return None
