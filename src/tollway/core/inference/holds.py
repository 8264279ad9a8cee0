"""What a chat call holds: its prompt and every choice's output cap at the dearer output price, and the
largest cap a shrunken hold still pays for (core/inference/pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable

from tollway.core.money.prices import TokenPrices, TokenUsage, token_cost


def chat_hold(prices: TokenPrices, prompt: int, choices: int, per_choice: int) -> int:
    """What a chat call may cost: its prompt, and `per_choice` output tokens on each choice, at the
    dearer of the output and reasoning prices (reasoning tokens are output billed at their own)."""
    outputs = per_choice * choices
    reasoning = outputs if prices.reasoning is not None and prices.reasoning > prices.output else 0
    return token_cost(prices, TokenUsage(prompt, outputs, reasoning_tokens=reasoning))


def affordable_cap(hold_for: Callable[[int], int], held: int, cap: int) -> int:
    """The largest output cap, from 1 to `cap`, whose hold fits in `held` (hold_for(1) does)."""
    low, high = 1, cap
    while low < high:
        middle = (low + high + 1) // 2
        if hold_for(middle) <= held:
            low = middle
        else:
            high = middle - 1
    return low
