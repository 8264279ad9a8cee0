"""Every price of Tollway, in exact integer nano-USD (1e-9 USD): no float ever touches an amount.

Catalog prices are decimal strings of USD (base/config.py PricingConfig); each model carries its
effective markup (core/catalog/catalog.py CatalogModel.markup), applied once by `scale_price`, which
rounds up to the nano: a markup never makes a price cheaper than intended.

- Tokens (chat, embeddings): `token_cost`, per 1M tokens, cached and reasoning tokens priced apart.
- Synchronous media (core/media/pipeline.py), catalog `pricing` fields:
  - images: `per_image` × resolution tier × quality. Tiers follow seed 000: 1K (longest side up to
    1280, Venice's native maximum) ×1, 2K (up to 2048) ×2, 4K (up to 4096) ×4. Quality: `low` ×½,
    `high`/`hd` ×2, anything else ×1;
  - upscale: `per_image` is the 2x price; a scale s costs per_image × s²/4 (Venice: 2x $0.02, 4x $0.08);
  - edit and background removal: `per_image`, flat;
  - speech: `per_million_chars` × the characters of `input`;
  - transcription: `per_second` × the seconds of audio (ms precision).
- Async media jobs (core/jobs/), quotes with the markup applied and rounded up to the nano once:
  - video: `per_generation["720p/8s"]` or `["720p/8s/audio"]` is an exact price when present (seed
    001's credit tables are not linear); otherwise seconds × (`per_second` + `per_second_surcharges`
    for the resolution and for "audio") + flat `surcharges` for the resolution and "audio". A model
    with a `per_generation` table and no `per_second` only offers the combinations it lists.
  - images (task API): n × (`per_image`, or `per_image_input` when an input image is given, + flat
    `surcharges` for the resolution tier "1K|2K|4K" and the quality, e.g. "hd"). This is seed 001's
    price model (flat surcharges); the synchronous image routes use seed 000's multipliers above.
  - music and sound effects: seconds × `per_second`; long speech: characters × `per_million_chars`.
  The quote is what is held at submit and, unless the upstream reports less, exactly what is charged.
- Crypto JSON-RPC (core/rpc/): `rpc_cost`, credits × the price of a credit (TOLLWAY_CRYPTO_RPC_CREDIT_USD,
  Venice's ~7e-7 USD, an operator setting and not a catalog price: no markup).
- Venice's augment routes (core/augment.py): a flat price per call (TOLLWAY_AUGMENT_*_USD, operator
  settings, whole nano-USD, no markup).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from tollway.base.config import ModelConfig
from tollway.errors import ErrorCode, TollwayError

NANO_PER_USD = 1_000_000_000
PER_MILLION = 1_000_000


def usd_to_nano(value: str | int | Decimal) -> int:
    """Parse a USD amount ("10.00", "0.000000001") to nano-USD; finer than a nano-USD is an error."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal USD amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a finite USD amount: {value!r}")
    nano = amount * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ValueError(f"{value!r} has more than 9 decimal places of USD")
    return int(nano)


def nano_to_usd(nano: int) -> str:
    """Render nano-USD as a decimal string of USD with 9 places, e.g. 1500000000 -> "1.500000000"."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


COST_HEADER = "x-tollway-cost-usd"  # what a call was charged, as `nano_to_usd` writes it


def rpc_cost(credits: int, credit_nano: int) -> int:
    """A crypto RPC call's charge: whole credits at a whole nano-USD each, so exact."""
    return credits * credit_nano


def usd_8(nano: int) -> str:
    """Venice's `X-Venice-RPC-Cost-USD`: USD to 8 decimal places (14000 -> "0.00001400"), rounded half even."""
    return f"{Decimal(nano).scaleb(-9):.8f}"


def cost_number(nano: int) -> float:
    """A charge as the JSON number `usage.cost` (USD) that answers carry, for clients that read numbers.

    The double nearest the exact decimal: an amount under 1,000,000 USD has at most 15 significant
    digits, so the shortest text of that double (what orjson writes) is that exact decimal, e.g.
    12000 -> 0.000012 and 7 -> 7e-9. Only rendering sees it; every sum stays in integer nano-USD."""
    return float(Decimal(nano).scaleb(-9))


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def scale_price(usd: str, markup: Decimal) -> int:
    """A catalog price (USD per unit-block) times markup, as integer nano-USD per unit-block.

    Rounds up to the nano: a markup never makes a price cheaper than intended.
    """
    exact = Decimal(usd) * markup * NANO_PER_USD
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def batch_price(cost_nano: int, discount: str | None) -> int:
    """A batch line's price: the live price less the model's `pricing.batch_discount` (a fraction,
    "0.5" = half price), rounded up to the nano; no discount is the full price."""
    if discount is None:
        return cost_nano
    exact = Decimal(cost_nano) * (1 - Decimal(discount))
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """Nano-USD per 1M tokens, markup included."""

    input: int
    output: int
    cached_input: int | None = None  # None: cached tokens cost as much as uncached ones
    reasoning: int | None = None  # None: reasoning tokens are output tokens


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens
    reasoning_tokens: int = 0  # part of completion_tokens


def token_cost(prices: TokenPrices, usage: TokenUsage) -> int:
    """The cost of a call, summed exactly and rounded up to the nano-USD once."""
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    reasoning = min(max(usage.reasoning_tokens, 0), usage.completion_tokens)
    cached_price = prices.input if prices.cached_input is None else prices.cached_input
    reasoning_price = prices.output if prices.reasoning is None else prices.reasoning
    total = (
        (usage.prompt_tokens - cached) * prices.input
        + cached * cached_price
        + (usage.completion_tokens - reasoning) * prices.output
        + reasoning * reasoning_price
    )
    return ceil_div(total, PER_MILLION)


def usage_of(raw: Any, *, completion: bool = True) -> TokenUsage | None:
    """An OpenAI `usage` object as TokenUsage; None when it is missing or malformed.

    With `completion` (chat), a usage without `completion_tokens` is malformed too: billing its
    prompt alone would give the answer away, so the caller counts the text instead.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("prompt_tokens"), int):
        return None
    if completion and not isinstance(raw.get("completion_tokens"), int):
        return None
    details_in = raw.get("prompt_tokens_details") or {}
    details_out = raw.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=raw["prompt_tokens"],
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details_in.get("cached_tokens") or 0) if isinstance(details_in, dict) else 0,
        reasoning_tokens=int(details_out.get("reasoning_tokens") or 0)
        if isinstance(details_out, dict)
        else 0,
    )


def usage_dict(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class Priced(Protocol):
    """What a price reads of a catalog model (core/catalog/catalog.py CatalogModel)."""

    @property
    def id(self) -> str: ...

    @property
    def config(self) -> ModelConfig: ...

    @property
    def markup(self) -> Decimal: ...


# -- synchronous media -----------------------------------------------------------------------------

TIERS = {"1K": (1280, 1), "2K": (2048, 2), "4K": (4096, 4)}  # longest side → price multiplier
QUALITY = {"low": (1, 2), "high": (2, 1), "hd": (2, 1)}  # (numerator, denominator); default 1/1


def tier_of(width: int, height: int) -> str:
    side = max(width, height)
    for name, (limit, _) in TIERS.items():
        if side <= limit:
            return name
    return "4K"


def unit_price(model: Priced, field: str) -> int:
    """A non-token catalog price in nano-USD with the model's (or the catalog's) markup."""
    value = getattr(model.config.pricing, field)
    if value is None:
        raise TollwayError(
            ErrorCode.INVALID_MODEL,
            f"{model.id!r} has no `{field}` price; it cannot serve this route.",
            param="model",
        )
    return scale_price(value, model.markup)


def image_cost(price_nano: int, width: int, height: int, quality: str | None, n: int) -> int:
    _, tier_mult = TIERS[tier_of(width, height)]
    num, den = QUALITY.get(quality or "", (1, 1))
    return ceil_div(price_nano * tier_mult * num * n, den)


def upscale_cost(price_nano: int, scale: float) -> int:
    # Scale to hundredths as an integer so the arithmetic stays exact.
    hundredths = round(Decimal(str(scale)) * 100)
    return ceil_div(price_nano * int(hundredths) ** 2, 4 * 100 * 100)


def speech_cost(price_nano: int, characters: int) -> int:
    return ceil_div(price_nano * characters, 1_000_000)


def seconds_cost(price_nano: int, milliseconds: int) -> int:
    return ceil_div(price_nano * milliseconds, 1000)


# -- async media jobs ------------------------------------------------------------------------------

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class VideoAsk:
    seconds: int
    resolution: str
    audio: bool


def _price(usd: Decimal, model: Priced) -> int:
    return scale_price(str(usd), model.markup)


def _missing(model: Priced, field: str) -> TollwayError:
    return TollwayError(
        ErrorCode.INVALID_MODEL,
        f"{model.id!r} has no `{field}` price; it cannot serve this route.",
        param="model",
    )


def video_key(ask: VideoAsk) -> str:
    return f"{ask.resolution}/{ask.seconds}s" + ("/audio" if ask.audio else "")


def video_quote(model: Priced, ask: VideoAsk) -> int:
    pricing = model.config.pricing
    exact = pricing.per_generation.get(video_key(ask))
    if exact is not None:
        return _price(Decimal(exact), model)
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
    return _price(per_second * ask.seconds + flat, model)


def offered_video(model: Priced) -> tuple[set[str], set[int]] | None:
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


def image_quote(model: Priced, *, n: int, tier: str, quality: str | None, with_input: bool) -> int:
    pricing = model.config.pricing
    base = pricing.per_image_input if with_input and pricing.per_image_input else pricing.per_image
    if base is None:
        raise _missing(model, "per_image")
    each = Decimal(base)
    for option in (tier, quality):
        if option:
            each += Decimal(pricing.surcharges.get(option, "0"))
    return _price(each * n, model)


def seconds_quote(model: Priced, seconds: int) -> int:
    if model.config.pricing.per_second is None:
        raise _missing(model, "per_second")
    return _price(Decimal(model.config.pricing.per_second) * seconds, model)


def speech_quote(model: Priced, characters: int) -> int:
    if model.config.pricing.per_million_chars is None:
        raise _missing(model, "per_million_chars")
    return _price(Decimal(model.config.pricing.per_million_chars) * characters / MILLION, model)
