"""Exact money arithmetic (DESIGN §4): integer nano-USD, rounded up once, never a float."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.core.money.prices import (
    NANO_PER_USD,
    PER_MILLION,
    TokenPrices,
    TokenUsage,
    ceil_div,
    image_cost,
    nano_to_usd,
    scale_price,
    seconds_cost,
    speech_cost,
    tier_of,
    token_cost,
    upscale_cost,
    usage_of,
    usd_to_nano,
)

NANO = st.integers(min_value=-(10**18), max_value=10**18)  # BigInteger range, roughly


@given(NANO)
def test_nano_round_trips_through_usd_string(nano: int) -> None:
    text = nano_to_usd(nano)
    assert usd_to_nano(text) == nano
    whole, frac = text.lstrip("-").split(".")
    assert len(frac) == 9 and whole.isdigit()


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=9, allow_nan=False, allow_infinity=False))
def test_usd_with_at_most_nine_places_is_exact(amount: Decimal) -> None:
    nano = usd_to_nano(str(amount))
    assert Fraction(nano, NANO_PER_USD) == Fraction(amount)
    assert usd_to_nano(amount) == nano
    assert Decimal(nano_to_usd(nano)) == amount


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("10.00", 10_000_000_000),
        ("0.000000001", 1),
        ("1.5", 1_500_000_000),
        ("-0.25", -250_000_000),
        (7, 7_000_000_000),
        (Decimal("0.1"), 100_000_000),
    ],
)
def test_usd_to_nano_known_values(text: str | int | Decimal, nano: int) -> None:
    assert usd_to_nano(text) == nano


def test_nano_to_usd_known_values() -> None:
    assert nano_to_usd(1_500_000_000) == "1.500000000"
    assert nano_to_usd(1) == "0.000000001"
    assert nano_to_usd(-1) == "-0.000000001"
    assert nano_to_usd(0) == "0.000000000"


@pytest.mark.parametrize("text", ["0.0000000001", "1.0000000005", "-0.0000000001", "1e-10"])
def test_more_than_nine_decimal_places_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="more than 9 decimal places"):
        usd_to_nano(text)


@pytest.mark.parametrize("value", ["abc", "", "1.2.3", "$5", "5 USD", None, True])
def test_non_numbers_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="not a decimal USD amount"):
        usd_to_nano(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["inf", "-Infinity", "NaN", "sNaN", Decimal("Infinity")])
def test_non_finite_amounts_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="not a finite USD amount"):
        usd_to_nano(value)  # type: ignore[arg-type]


def test_ceil_div() -> None:
    assert ceil_div(10, 5) == 2
    assert ceil_div(11, 5) == 3
    assert ceil_div(1, PER_MILLION) == 1
    assert ceil_div(0, 7) == 0


def test_token_cost_hand_computed_example() -> None:
    # $0.10 and $0.40 per 1M tokens = 100 and 400 nano-USD per token.
    prices = TokenPrices(input=usd_to_nano("0.10"), output=usd_to_nano("0.40"))
    cost = token_cost(prices, TokenUsage(prompt_tokens=1234, completion_tokens=567))
    assert cost == 1234 * 100 + 567 * 400 == 350_200


def test_token_cost_rounds_the_sum_up_once() -> None:
    # $0.0375/1M = 37.5 nano per token: 1233 * 37.5 = 46237.5; 567 * 150 = 85050 → 131287.5 → 131288.
    prices = TokenPrices(input=usd_to_nano("0.0375"), output=usd_to_nano("0.15"))
    assert token_cost(prices, TokenUsage(prompt_tokens=1233, completion_tokens=567)) == 131_288
    # Two half-nanos sum to one whole nano: rounding once, not per part.
    prices = TokenPrices(input=500_000, output=500_000)  # 0.5 nano per token
    assert token_cost(prices, TokenUsage(prompt_tokens=1, completion_tokens=1)) == 1
    assert token_cost(prices, TokenUsage(prompt_tokens=1, completion_tokens=0)) == 1
    assert token_cost(prices, TokenUsage()) == 0


def test_cached_and_reasoning_tokens_have_their_own_prices() -> None:
    prices = TokenPrices(
        input=usd_to_nano("0.10"),  # 100 nano / token
        output=usd_to_nano("0.40"),  # 400
        cached_input=usd_to_nano("0.025"),  # 25
        reasoning=usd_to_nano("0.80"),  # 800
    )
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=200)
    assert token_cost(prices, usage) == 600 * 100 + 400 * 25 + 300 * 400 + 200 * 800 == 350_000


def test_cached_and_reasoning_default_to_input_and_output_prices() -> None:
    prices = TokenPrices(input=usd_to_nano("0.10"), output=usd_to_nano("0.40"))
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=200)
    assert token_cost(prices, usage) == 1000 * 100 + 500 * 400


def test_cached_and_reasoning_counts_are_clamped_to_their_totals() -> None:
    prices = TokenPrices(input=100_000_000, output=400_000_000, cached_input=0, reasoning=0)
    # More cached tokens than prompt tokens cannot make the prompt free beyond its size, nor negative.
    usage = TokenUsage(prompt_tokens=10, completion_tokens=10, cached_tokens=50, reasoning_tokens=50)
    assert token_cost(prices, usage) == 0
    usage = TokenUsage(prompt_tokens=10, completion_tokens=10, cached_tokens=-5, reasoning_tokens=-5)
    assert token_cost(prices, usage) == 10 * 100 + 10 * 400


PRICE = st.integers(min_value=0, max_value=200 * NANO_PER_USD)  # up to $200 per 1M tokens
TOKENS = st.integers(min_value=0, max_value=2_000_000)


@given(
    st.builds(
        TokenPrices,
        input=PRICE,
        output=PRICE,
        cached_input=st.none() | PRICE,
        reasoning=st.none() | PRICE,
    ),
    TOKENS,
    TOKENS,
    TOKENS,
    TOKENS,
)
def test_rounding_never_undercharges_and_is_less_than_one_nano(
    prices: TokenPrices, prompt: int, completion: int, cached: int, reasoning: int
) -> None:
    usage = TokenUsage(prompt, completion, min(cached, prompt), min(reasoning, completion))
    cached_price = prices.input if prices.cached_input is None else prices.cached_input
    reasoning_price = prices.output if prices.reasoning is None else prices.reasoning
    exact = (
        Fraction((prompt - usage.cached_tokens) * prices.input, PER_MILLION)
        + Fraction(usage.cached_tokens * cached_price, PER_MILLION)
        + Fraction((completion - usage.reasoning_tokens) * prices.output, PER_MILLION)
        + Fraction(usage.reasoning_tokens * reasoning_price, PER_MILLION)
    )
    cost = token_cost(prices, usage)
    assert isinstance(cost, int)
    assert cost >= exact  # never undercharges
    assert cost - exact < 1  # by less than one nano-USD
    assert cost * PER_MILLION >= exact * PER_MILLION


def test_usage_details_that_are_not_objects_count_no_cached_or_reasoning_tokens() -> None:
    """providers/checks.py drops such a usage before the pipeline reads it; usage_of stands on its own
    anyway: odd details are none, never a crash or a token."""
    for odd in ("n/a", [3], 7):
        raw = {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": odd}
        assert usage_of({**raw, "completion_tokens_details": odd}) == TokenUsage(10, 4, 0, 0)
    details = {
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert usage_of({"prompt_tokens": 10, "completion_tokens": 4, **details}) == TokenUsage(10, 4, 6, 2)


def test_scale_price_with_markup() -> None:
    assert scale_price("0.10", Decimal("1.25")) == 125_000_000
    assert scale_price("0.40", Decimal("1.25")) == 500_000_000
    assert (
        scale_price("0.3", Decimal("1.1")) == 330_000_000
    )  # 0.3 * 1.1 would be 0.33000000000000007 in float
    assert scale_price("2.50", Decimal("1.0")) == 2_500_000_000
    assert scale_price("0", Decimal("3")) == 0


def test_scale_price_rounds_up_to_the_nano() -> None:
    assert scale_price("0.000000001", Decimal("1.5")) == 2  # 1.5 nano → 2, never 1
    assert scale_price("0.000000003", Decimal("0.5")) == 2  # 1.5 nano → 2
    assert scale_price("0.000000002", Decimal("0.5")) == 1  # exact stays exact


@given(
    st.decimals(min_value=0, max_value=1000, places=9, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10, places=4, allow_nan=False, allow_infinity=False),
)
def test_scale_price_is_the_ceiling_of_the_exact_product(usd: Decimal, markup: Decimal) -> None:
    exact = Fraction(usd) * Fraction(markup) * NANO_PER_USD
    nano = scale_price(str(usd), markup)
    assert nano >= exact
    assert nano - exact < 1


def test_pricing_tiers_quality_and_units() -> None:
    assert [tier_of(1024, 1024), tier_of(1280, 720), tier_of(1536, 1024), tier_of(4096, 4096)] == [
        "1K",
        "1K",
        "2K",
        "4K",
    ]
    price = 2_000_000  # $0.002
    assert image_cost(price, 1024, 1024, "auto", 1) == 2_000_000
    assert image_cost(price, 2048, 2048, None, 1) == 4_000_000
    assert image_cost(price, 4096, 4096, "high", 2) == 32_000_000
    assert image_cost(price, 1024, 1024, "low", 1) == 1_000_000
    assert upscale_cost(20_000_000, 2) == 20_000_000  # Venice: 2x $0.02
    assert upscale_cost(20_000_000, 4) == 80_000_000  # 4x $0.08
    assert speech_cost(3_500_000_000, 1000) == 3_500_000  # $3.50 / 1M chars
    assert seconds_cost(100_000, 2500) == 250_000  # $0.0001 / s
    assert speech_cost(3_500_000_000, 1) == 3500
