"""A chat call's hold (core/inference/pipeline.py): the prompt plus every choice's output cap at the
dearer of the output and reasoning prices, and the largest cap a smaller hold still pays for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tollway.core.inference.holds import affordable_cap as _affordable
from tollway.core.inference.holds import chat_hold as _chat_hold
from tollway.core.money.prices import TokenPrices

PER_MILLION = 1_000_000


def test_output_is_held_at_the_output_price_when_reasoning_is_cheaper_or_unpriced() -> None:
    """Reasoning tokens are output tokens billed at their own price: a cheaper reasoning price must not
    shrink the hold (every output token may be plain output), an unpriced one is the output price."""
    for reasoning in (None, 1_000, 2_000):
        prices = TokenPrices(input=3_000_000, output=2_000_000, reasoning=reasoning)
        # 10 prompt tokens, 2 choices of 7 tokens: 10 × $3 + 14 × $2 per million tokens.
        assert _chat_hold(prices, 10, 2, 7) == (10 * 3_000_000 + 14 * 2_000_000) // PER_MILLION


def test_output_is_held_at_the_reasoning_price_when_reasoning_is_dearer() -> None:
    prices = TokenPrices(input=3_000_000, output=2_000_000, reasoning=5_000_000)
    assert _chat_hold(prices, 10, 2, 7) == (10 * 3_000_000 + 14 * 5_000_000) // PER_MILLION


@given(
    per_token=st.integers(min_value=1, max_value=1_000),
    base=st.integers(min_value=0, max_value=1_000),
    cap=st.integers(min_value=1, max_value=5_000),
    extra=st.integers(min_value=0, max_value=6_000_000),
)
def test_the_affordable_cap_is_the_largest_whose_hold_fits(
    per_token: int, base: int, cap: int, extra: int
) -> None:
    """Against counting up one token at a time: exact fits included (a hold equal to what is held fits)."""

    def hold_for(tokens: int) -> int:
        return base + per_token * tokens

    held = hold_for(1) + extra % (per_token * cap + 1)
    largest = max(n for n in range(1, cap + 1) if hold_for(n) <= held)
    assert _affordable(hold_for, held, cap) == largest


def test_a_hold_that_fits_exactly_keeps_that_cap() -> None:
    assert _affordable(lambda tokens: 10 * tokens, 50, 100) == 5
