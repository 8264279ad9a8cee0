"""The provider interface: the internal lingua franca is OpenAI's request and response dicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

# What an upstream failure means, decided once here for every provider (`classify`); the router
# (core/inference/router.py) acts on it and tells the client accordingly:
# - transient: the upstream broke (5xx, 408, 409, a transport error, an unreadable answer): retry;
# - rejected: the upstream judged the request invalid (400, 413, 422): the client's own error;
# - auth: the upstream refused this server's credentials (401, 403): the operator's to fix;
# - rate_limited: the upstream asks this server to slow down (429): another route, else a 429;
# - route: any other 4xx (404, 405, 410, ...): this route is misconfigured; another route may serve.
FailureKind = Literal["transient", "rejected", "auth", "rate_limited", "route"]
# 408/409 are what the official SDKs retry too (anchors §0 item 8).
TRANSIENT_STATUSES = frozenset({408, 409, 500, 502, 503, 504, 529})
REJECTED_STATUSES = frozenset({400, 413, 422})


def classify(status: int) -> FailureKind:
    if status in REJECTED_STATUSES:
        return "rejected"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500 and status not in TRANSIENT_STATUSES:
        return "route"
    return "transient"


class UpstreamError(Exception):
    """An upstream failed. The message is safe to show: it never carries a secret or content.

    `detail` is the upstream's own explanation of a refused request (kind "rejected"), with its
    secrets and hosts already removed (providers/http.py `upstream_detail`); nothing else is passed on.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        timeout: bool = False,
        retry_after: float | None = None,
        kind: FailureKind = "transient",
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.timeout = timeout
        self.retry_after = retry_after
        self.kind = kind
        self.detail = detail


class Provider(Protocol):
    """One upstream. `body` is an OpenAI-shaped request whose `model` is the upstream's model id."""

    id: str

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """`chat.completion.chunk` dicts; raises UpstreamError if the stream breaks before it ends."""
        ...

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI embeddings response with float vectors."""
        ...

    async def aclose(self) -> None: ...


class Completer(Protocol):
    """A provider that serves legacy completions (registry capability `completions`)."""

    id: str

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def complete_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """`text_completion` chunks (`choices[].text`); the last carries `usage`."""
        ...


class Moderator(Protocol):
    """A provider that serves `/moderations` (registry capability `moderations`)."""

    id: str

    async def moderate(self, body: dict[str, Any]) -> dict[str, Any]: ...
