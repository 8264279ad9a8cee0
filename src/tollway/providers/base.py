"""The provider interface: the internal lingua franca is OpenAI's request and response dicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class UpstreamError(Exception):
    """An upstream failed. The message is safe to show: it never carries a secret or content."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        timeout: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.timeout = timeout
        self.retry_after = retry_after


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
