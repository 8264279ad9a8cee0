"""The `local` provider kind: embedded models, no network, no key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from tollway.dialects.translation import without_cache_hints
from tollway.errors import ErrorCode, TollwayError
from tollway.providers import checks
from tollway.providers.base import UpstreamError
from tollway.providers.local import completions
from tollway.providers.local.chat import LlamaChat, smollm2_path
from tollway.providers.local.embeddings import MiniLmEmbeddings
from tollway.providers.local.jobs import run_local
from tollway.providers.local.media import LocalMedia
from tollway.providers.media import InputImage, Output


class LocalProvider(LocalMedia):
    """Routes `model` (a route's upstream id) to an embedded engine, created on first use."""

    def __init__(self, provider_id: str) -> None:
        self.id = provider_id
        self._chat: dict[str, LlamaChat] = {}
        self._embeddings: dict[str, MiniLmEmbeddings] = {}

    def _chat_engine(self, model: str) -> LlamaChat:
        if model != "smollm2-135m-instruct":
            raise UpstreamError(f"no embedded chat model {model!r}", retryable=False)
        if model not in self._chat:
            self._chat[model] = LlamaChat(smollm2_path())
        return self._chat[model]

    def _embedding_engine(self, model: str) -> MiniLmEmbeddings:
        if model != "all-minilm-l6-v2":
            raise UpstreamError(f"no embedded embedding model {model!r}", retryable=False)
        return self._embeddings.setdefault(model, MiniLmEmbeddings())

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        body = without_cache_hints(body)  # llama.cpp keeps its own prompt cache
        return checks.chat_answer(self.id, await self._chat_engine(body["model"]).chat(body))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = without_cache_hints(body)
        async with aclosing(self._chat_engine(body["model"]).chat_stream(body)) as chunks:
            async for chunk in chunks:
                yield checks.chat_chunk(self.id, chunk)

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Legacy completions: the raw prompt, no chat template (providers/local/completions.py)."""
        self._refuse_completion(body)
        return checks.completion_answer(
            self.id, await completions.complete(self._chat_engine(body["model"]), body)
        )

    async def complete_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self._refuse_completion(body)
        engine = self._chat_engine(body["model"])
        async with aclosing(completions.complete_stream(engine, body)) as chunks:
            async for chunk in chunks:
                yield checks.completion_chunk(self.id, chunk)

    @staticmethod
    def _refuse_completion(body: dict[str, Any]) -> None:
        refusal = completions.refusal(body)
        if refusal is not None:
            field, why = refusal
            raise TollwayError(ErrorCode.UNSUPPORTED_CAPABILITY, f"{why}; leave `{field}` out.", param=field)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._embedding_engine(body["model"]).embed(body)

    async def run_job(
        self,
        engine: str,
        kind: str,
        params: dict[str, Any],
        input_image: InputImage,
        progress: Callable[[float], None],
    ) -> Output:
        return await run_local(self, engine, kind, params, input_image, progress)

    async def aclose(self) -> None:
        """llama.cpp's server stops with the process; the Piper child is ours to stop."""
        await self.close_media()
