"""How a new async job is assembled from a parsed request: its engine parameters, units and ETA.

The HTTP adapters (api/media/jobs.py, api/media/tasks.py) read and validate the fields, in the order
their errors are reported, and price the job (core/money/prices.py); what the job carries to the
engine, how many units it bills and how long it is expected to take are decided here.
"""

from __future__ import annotations

from typing import Any

from tollway import media_formats
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.jobs.service import NewJob
from tollway.core.money import prices
from tollway.errors import ErrorCode, TollwayError

SEED_LIMIT = 999_999_999
# The task API's image aspect ratios (seed 001), as (width, height) proportions.
TASK_ASPECTS = {
    "1:1": (1, 1),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "3:2": (3, 2),
    "2:3": (2, 3),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "21:9": (21, 9),
}


def check_offered(model: CatalogModel, seconds: int, resolution: str, *, duration_param: str) -> None:
    """A table-priced video model serves only the resolutions and durations its table lists."""
    offered = prices.offered_video(model)
    if offered is None:
        return
    resolutions, durations = offered
    if resolution not in resolutions:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"{model.id!r} offers resolutions {', '.join(sorted(resolutions))}.",
            param="resolution",
        )
    if seconds not in durations:
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"{model.id!r} offers durations {', '.join(str(d) for d in sorted(durations))} s.",
            param=duration_param,
        )


def video_job(
    model: CatalogModel,
    ask: prices.VideoAsk,
    quote_nano: int,
    *,
    prompt: str,
    negative_prompt: str,
    aspect_ratio: str,
    seed: int,
    input_media: str | None,
    endpoint: str,
) -> NewJob:
    params: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "duration": ask.seconds,
        "seconds": ask.seconds,
        "resolution": ask.resolution,
        "aspect_ratio": aspect_ratio,
        "audio": ask.audio,
        "seed": seed,
    }
    if input_media is not None:
        params["input_media"] = input_media
    width, height = media_formats.frame_size(ask.resolution, aspect_ratio)
    eta = max(5, int(ask.seconds * width * height / 400_000))
    return NewJob("video", model, quote_nano, ask.seconds, params, endpoint, eta, (prompt, negative_prompt))


def speech_job(model: CatalogModel, words: str, voice: Any, fmt: str | None) -> NewJob:
    """Long speech: billed per character, rendered sentence by sentence."""
    params = {"input": words, "voice": voice, "format": fmt, "speed": 1.0}
    quote = prices.speech_quote(model, len(words))
    return NewJob(
        "audio", model, quote, len(words), params, "audio_queue", max(3, len(words) // 200), (words,)
    )


def sound_job(model: CatalogModel, prompt: str, seconds: int, fmt: str | None, seed: int) -> NewJob:
    """Music or a sound effect: billed per second."""
    params = {"prompt": prompt, "duration": seconds, "seconds": seconds, "format": fmt, "seed": seed}
    quote = prices.seconds_quote(model, seconds)
    return NewJob("audio", model, quote, seconds, params, "audio_queue", max(2, seconds // 10), (prompt,))


def task_image_size(aspect: str, resolution: str) -> tuple[int, int]:
    """The task API's image size: the tier's long side, the other side by the aspect ratio (multiple of 8)."""
    w, h = TASK_ASPECTS[aspect]
    long_side = media_formats.TIER_SIDE[resolution]
    if w >= h:
        return long_side, max(64, round(long_side * h / w / 8) * 8)
    return max(64, round(long_side * w / h / 8) * 8), long_side


def image_task_job(
    model: CatalogModel,
    quote_nano: int,
    *,
    prompt: str,
    n: int,
    size: tuple[int, int],
    tier: str,
    fmt: str,
    quality: str,
    seed: int,
    input_media: str | None,
) -> NewJob:
    # `tier` is kept so that a result with fewer images than asked is priced again for what came back.
    params: dict[str, Any] = {
        "prompt": prompt,
        "width": size[0],
        "height": size[1],
        "tier": tier,
        "n": n,
        "format": fmt,
        "quality": quality,
        "seed": seed,
    }
    if input_media is not None:
        params["input_media"] = input_media
    return NewJob("image", model, quote_nano, n, params, "images_task", max(2, n * 2), (prompt,))
