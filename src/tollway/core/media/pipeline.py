"""Metering and validation for the media endpoints: images, speech, transcription (DESIGN §3, §4).

The same admission as chat (policy, rate limits, an atomic reservation of the worst case, 402
before any work), then route, then settle the actual cost and write one usage row whose `units`
column counts what was billed: images, characters of speech, or seconds of audio. A failure
before any result releases the hold and charges nothing.

Prices: core/money/prices.py (tiers × quality for images, characters of speech, seconds of audio).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from tollway.core.access import policy
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.inference.pipeline import Admitted, Call, Pipeline
from tollway.core.money.prices import (
    COST_HEADER,
    image_cost,
    nano_to_usd,
    seconds_cost,
    speech_cost,
    unit_price,
    upscale_cost,
)
from tollway.errors import ErrorCode, TollwayError
from tollway.providers.base import Provider, UpstreamError
from tollway.providers.media import ImageJob, ImageOp, MediaProvider, SpeechJob, Transcript, TranscriptionJob

log = logging.getLogger("tollway.media")
T = TypeVar("T")

# With no way to probe the audio's length, reserve as if it were 1 kB/s (8 kbit/s, lower than any
# speech codec in use): an over-reservation that settlement corrects.
FALLBACK_BYTES_PER_SECOND = 1000
_pending: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True, slots=True)
class Charged:
    """What an adapter renders from: the provider's output, the headers, the cost."""

    headers: dict[str, str]
    cost_nano: int


class Media:
    """The media endpoints' pipeline. Uses Pipeline's admission, routing and usage rows."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    # -- shared ---------------------------------------------------------------------------------

    def resolve(self, name: object, types: tuple[str, ...], *, fallback: bool = False) -> CatalogModel:
        """The model, which must be one of `types`. With `fallback`, a missing or unknown name is the
        default model of the first type (Venice's images/generations maps unknown names so)."""
        if name is None:
            return self.default_model(types[0])
        try:
            model = self.pipeline.catalog.resolve(name)
        except TollwayError:
            if fallback:
                return self.default_model(types[0])
            raise
        if model.type not in types:
            raise TollwayError(
                ErrorCode.INVALID_MODEL,
                f"{model.id!r} is a {model.type} model; this route needs a {' or '.join(types)} model.",
                param="model",
            )
        return model

    def default_model(self, model_type: str, capability: str | None = None) -> CatalogModel:
        candidates = [
            m
            for m in self.pipeline.catalog.of_type(model_type)
            if capability is None or m.supports(capability)
        ]
        if capability is None:  # a generation default never lands on a single-purpose model
            candidates = [m for m in candidates if not m.supports("background_removal")] or candidates
        if not candidates:
            raise TollwayError(
                ErrorCode.INVALID_MODEL, f"No {model_type} model is configured.", param="model"
            )
        preferred = [m for m in candidates if "default" in m.config.traits]
        return (preferred or candidates)[0]

    async def _settle(self, admitted: Admitted, provider: str, cost: int, units: int) -> int:
        return await admitted.hold.settle(cost, provider=provider, units=units)

    async def _run(
        self,
        call: Call,
        model: CatalogModel,
        estimate: int,
        attempt: Callable[[MediaProvider, str], Awaitable[T]],
        *,
        failure: ErrorCode | None = None,
    ) -> tuple[Admitted, str, T]:
        """Admit (402 before any work), route, and release on any failure. Returns (hold, provider, out)."""
        admitted = await self.pipeline.admit(call, model, estimate)

        async def on_route(provider: Provider, upstream_model: str) -> T:
            if not isinstance(provider, MediaProvider):
                raise UpstreamError(f"provider {provider.id!r} does not serve media", retryable=True)
            return await attempt(provider, upstream_model)

        try:
            async with admitted.hold:  # released (the upstream's status in its row) on any failure
                provider, out = await self.pipeline.first_route(model, on_route)
        except TollwayError as exc:
            if failure is not None and exc.code in (ErrorCode.UPSTREAM_ERROR, ErrorCode.UPSTREAM_TIMEOUT):
                raise TollwayError(failure) from exc
            raise
        return admitted, provider.id, out

    async def _check_policy(self, call: Call, model: CatalogModel, *texts: str) -> None:
        """The key's modelPrivacy, the catalog's content policy on prompts and speech input: before any charge."""
        await policy.enforce(self.pipeline.catalog, call.caller, {"input": [t for t in texts if t]}, model)

    def _headers(self, admitted: Admitted, provider: str, cost: int) -> dict[str, str]:
        return {
            **admitted.headers,
            "x-tollway-provider": provider,
            "x-tollway-cost-nano": str(cost),
            COST_HEADER: nano_to_usd(cost),
        }

    # -- images ---------------------------------------------------------------------------------

    async def generate(self, call: Call, model: CatalogModel, job: ImageJob) -> tuple[list[bytes], Charged]:
        await self._check_policy(call, model, job.prompt)
        cost = image_cost(unit_price(model, "per_image"), job.width, job.height, job.quality, job.n)
        admitted, provider, images = await self._run(
            call, model, cost, lambda p, upstream: p.generate_images(_with_model(job, upstream))
        )
        # Bill what came back (an upstream may return fewer images than asked), never more than held.
        produced = min(len(images), job.n)
        actual = image_cost(unit_price(model, "per_image"), job.width, job.height, job.quality, produced)
        charged = await self._settle(admitted, provider, actual, produced)
        return images, Charged(self._headers(admitted, provider, charged), charged)

    async def variations(
        self, call: Call, model: CatalogModel, op: ImageOp, n: int, size: tuple[int, int]
    ) -> tuple[list[bytes], Charged]:
        """OpenAI's image variations, passed through (providers/openai/responses.py): per image × n,
        billed for the images that came back."""
        price = unit_price(model, "per_image")
        width, height = size

        def attempt(p: MediaProvider, upstream: str) -> Awaitable[list[bytes]]:
            if not hasattr(p, "image_variations"):
                raise UpstreamError(
                    f"provider {upstream!r} makes no variations", retryable=False, kind="route"
                )
            routed = ImageOp(upstream, op.image, op.format)
            images: Awaitable[list[bytes]] = cast(Any, p).image_variations(routed, n, f"{width}x{height}")
            return images

        admitted, provider, images = await self._run(
            call, model, image_cost(price, width, height, None, n), attempt
        )
        produced = min(len(images), n)
        charged = await self._settle(
            admitted, provider, image_cost(price, width, height, None, produced), produced
        )
        return images[:produced], Charged(self._headers(admitted, provider, charged), charged)

    async def image_op(
        self, call: Call, model: CatalogModel, kind: str, op: ImageOp
    ) -> tuple[bytes, Charged]:
        """kind: edit | upscale | background."""
        await self._check_policy(call, model, op.prompt)
        price = unit_price(model, "per_image")
        cost = upscale_cost(price, op.scale) if kind == "upscale" else price

        def attempt(p: MediaProvider, upstream: str) -> Awaitable[bytes]:
            routed = ImageOp(upstream, op.image, op.format, op.prompt, op.scale, op.enhance)
            if kind == "edit":
                return p.edit_image(routed)
            if kind == "upscale":
                return p.upscale_image(routed)
            return p.remove_background(routed)

        failure = ErrorCode.UPSCALE_FAILED if kind == "upscale" else None
        admitted, provider, image = await self._run(call, model, cost, attempt, failure=failure)
        charged = await self._settle(admitted, provider, cost, 1)
        return image, Charged(self._headers(admitted, provider, charged), charged)

    # -- speech ---------------------------------------------------------------------------------

    async def speech(self, call: Call, model: CatalogModel, job: SpeechJob) -> tuple[bytes, Charged]:
        await self._check_policy(call, model, job.input)
        characters = len(job.input)
        cost = speech_cost(unit_price(model, "per_million_chars"), characters)
        admitted, provider, audio = await self._run(
            call, model, cost, lambda p, upstream: p.speech(_with_model(job, upstream))
        )
        charged = await self._settle(admitted, provider, cost, characters)
        return audio, Charged(self._headers(admitted, provider, charged), charged)

    async def speech_stream(
        self, call: Call, model: CatalogModel, job: SpeechJob
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """Audio chunks as they are encoded. Routing falls back only before the first chunk; the
        call is settled when the stream ends, also when the client leaves (the audio was made)."""
        await self._check_policy(call, model, job.input)
        characters = len(job.input)
        cost = speech_cost(unit_price(model, "per_million_chars"), characters)

        async def open_stream(p: MediaProvider, upstream: str) -> tuple[bytes, AsyncIterator[bytes]]:
            # The first audio byte decides: a stream that ends with none is a failure (the next route,
            # or nothing charged), not a sale of silence.
            iterator = p.speech_stream(_with_model(job, upstream)).__aiter__()
            async for first in iterator:
                if first:
                    return first, iterator
            raise UpstreamError("the upstream sent no audio")

        admitted, provider, (first, rest) = await self._run(call, model, cost, open_stream)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield first
                async for chunk in rest:
                    yield chunk
            finally:
                # Settle in a task of its own: a disconnect cancels this generator, not the charge.
                task = asyncio.ensure_future(self._settle(admitted, provider, cost, characters))
                _pending.add(task)
                task.add_done_callback(_pending.discard)

        return chunks(), {**admitted.headers, "x-tollway-provider": provider}

    # -- transcription --------------------------------------------------------------------------

    async def transcribe(
        self, call: Call, model: CatalogModel, job: TranscriptionJob, *, translate: bool = False
    ) -> tuple[Transcript, Charged]:
        """A transcription, or (`translate`) a translation to English passed through to an upstream
        that serves /audio/translations (providers/openai/responses.py); both billed per second."""
        price = unit_price(model, "per_second")
        seconds = await asyncio.to_thread(_probe_seconds, job.audio)
        if seconds is None:
            seconds = len(job.audio) / FALLBACK_BYTES_PER_SECOND
        # Reserve the probed length plus a second of slack (container headers round).
        reserve_ms = math.ceil(seconds * 1000) + 1000
        admitted, provider, transcript = await self._run(
            call,
            model,
            seconds_cost(price, reserve_ms),
            lambda p, upstream: _transcriber(p, translate)(_with_model(job, upstream)),
        )
        # An upstream that reports no duration is billed the probed length.
        duration = transcript.duration if transcript.duration > 0 else seconds
        actual_ms = min(math.ceil(duration * 1000), reserve_ms)
        cost = seconds_cost(price, actual_ms)
        charged = await self._settle(admitted, provider, cost, math.ceil(actual_ms / 1000))
        return transcript, Charged(self._headers(admitted, provider, charged), charged)


def _transcriber(
    provider: MediaProvider, translate: bool
) -> Callable[[TranscriptionJob], Awaitable[Transcript]]:
    if not translate:
        return provider.transcribe
    if not hasattr(provider, "translate"):
        raise UpstreamError("the provider does not translate", retryable=False, kind="route")
    method: Callable[[TranscriptionJob], Awaitable[Transcript]] = cast(Any, provider).translate
    return method


def _with_model(job: Any, upstream: str) -> Any:
    import dataclasses

    return dataclasses.replace(job, model=upstream)


def _probe_seconds(audio: bytes) -> float | None:
    """The audio's length via ffmpeg when it is installed (the `local` extra); None otherwise."""
    try:
        from tollway.providers.local.ffmpeg import probe_seconds

        return probe_seconds(audio)
    except (ImportError, UpstreamError, OSError):
        return None
