"""Exact money arithmetic in integer nano-USD (1e-9 USD). No float ever touches an amount."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

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


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def scale_price(usd: str, markup: Decimal) -> int:
    """A catalog price (USD per unit-block) times markup, as integer nano-USD per unit-block.

    Rounds up to the nano: a markup never makes a price cheaper than intended.
    """
    exact = Decimal(usd) * markup * NANO_PER_USD
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
