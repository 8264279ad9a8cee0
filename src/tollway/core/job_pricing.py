"""Quotes for async media jobs, in integer nano-USD (markup applied, rounded up to the nano once).

Catalog `pricing` fields (USD; core/catalog.py PricingConfig):
- video: `per_generation["720p/8s"]` or `["720p/8s/audio"]` is an exact price when present (seed
  001's credit tables are not linear); otherwise seconds × (`per_second` + `per_second_surcharges`
  for the resolution and for "audio") + flat `surcharges` for the resolution and "audio". A model
  with a `per_generation` table and no `per_second` only offers the combinations it lists.
- images (task API): n × (`per_image`, or `per_image_input` when an input image is given, + flat
  `surcharges` for the resolution tier "1K|2K|4K" and the quality, e.g. "hd").
- music and sound effects: seconds × `per_second`; long speech: characters × `per_million_chars`.
The quote is what is held at submit and, unless the upstream reports less, exactly what is charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tollway.core.catalog import Catalog, CatalogModel
from tollway.core.pricing import scale_price
from tollway.errors import ErrorCode, TollwayError

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class VideoAsk:
    seconds: int
    resolution: str
    audio: bool


def markup_of(catalog: Catalog, model: CatalogModel) -> Decimal:
    return Decimal(model.config.markup or catalog.config.markup)


def _price(usd: Decimal, catalog: Catalog, model: CatalogModel) -> int:
    return scale_price(str(usd), markup_of(catalog, model))


def _missing(model: CatalogModel, field: str) -> TollwayError:
    return TollwayError(
        ErrorCode.INVALID_MODEL,
        f"{model.id!r} has no `{field}` price; it cannot serve this route.",
        param="model",
    )


def video_key(ask: VideoAsk) -> str:
    return f"{ask.resolution}/{ask.seconds}s" + ("/audio" if ask.audio else "")


def video_quote(catalog: Catalog, model: CatalogModel, ask: VideoAsk) -> int:
    pricing = model.config.pricing
    exact = pricing.per_generation.get(video_key(ask))
    if exact is not None:
        return _price(Decimal(exact), catalog, model)
    if pricing.per_second is None:
        if pricing.per_generation:
            offered = ", ".join(sorted(pricing.per_generation))
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"{model.id!r} does not offer {video_key(ask)}; it offers {offered}.",
                param="duration",
            )
        raise _missing(model, "per_second")
    per_second = Decimal(pricing.per_second)
    flat = Decimal(0)
    for option in (ask.resolution, "audio" if ask.audio else None):
        if option is not None:
            per_second += Decimal(pricing.per_second_surcharges.get(option, "0"))
            flat += Decimal(pricing.surcharges.get(option, "0"))
    return _price(per_second * ask.seconds + flat, catalog, model)


def offered_video(model: CatalogModel) -> tuple[set[str], set[int]] | None:
    """(resolutions, durations) a table-priced model offers; None when priced per second."""
    pricing = model.config.pricing
    if pricing.per_second is not None or not pricing.per_generation:
        return None
    resolutions, durations = set(), set()
    for key in pricing.per_generation:
        parts = key.split("/")
        resolutions.add(parts[0])
        durations.add(int(parts[1].rstrip("s")))
    return resolutions, durations


def image_quote(
    catalog: Catalog, model: CatalogModel, *, n: int, tier: str, quality: str | None, with_input: bool
) -> int:
    pricing = model.config.pricing
    base = pricing.per_image_input if with_input and pricing.per_image_input else pricing.per_image
    if base is None:
        raise _missing(model, "per_image")
    each = Decimal(base)
    for option in (tier, quality):
        if option:
            each += Decimal(pricing.surcharges.get(option, "0"))
    return _price(each * n, catalog, model)


def seconds_quote(catalog: Catalog, model: CatalogModel, seconds: int) -> int:
    if model.config.pricing.per_second is None:
        raise _missing(model, "per_second")
    return _price(Decimal(model.config.pricing.per_second) * seconds, catalog, model)


def speech_quote(catalog: Catalog, model: CatalogModel, characters: int) -> int:
    if model.config.pricing.per_million_chars is None:
        raise _missing(model, "per_million_chars")
    return _price(Decimal(model.config.pricing.per_million_chars) * characters / MILLION, catalog, model)
