"""What a natively passed-through Responses answer is billed from (core/inference/responses/native.py)."""

from __future__ import annotations

from tollway.core.inference.responses.native import output_texts, usage_of, usage_out
from tollway.core.money.prices import TokenUsage


def test_the_upstreams_usage_is_read_with_its_cached_and_reasoning_tokens() -> None:
    raw = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
    }
    assert usage_of(raw) == TokenUsage(10, 7, cached_tokens=4, reasoning_tokens=3)
    assert usage_of({"input_tokens": 10, "output_tokens": 7}) == TokenUsage(10, 7)


def test_a_missing_or_partial_usage_is_none_so_the_text_is_counted() -> None:
    for raw in (
        None,
        {},
        {"input_tokens": 10},
        {"output_tokens": 3},
        {"input_tokens": "10", "output_tokens": 3},
    ):
        assert usage_of(raw) is None


def test_the_estimate_counts_text_reasoning_and_call_arguments() -> None:
    output = [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}]},
        {"type": "message", "content": [{"type": "output_text", "text": "hello"}]},
        {"type": "function_call", "arguments": '{"a": 1}'},
        "junk",
    ]
    assert output_texts(output) == ["thought", "hello", '{"a": 1}']
    assert output_texts(None) == []


def test_the_answers_usage_carries_the_ledgers_cost_once_settled() -> None:
    usage = TokenUsage(10, 7, cached_tokens=4, reasoning_tokens=3)
    assert usage_out(usage, 13_000) == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 17,
        "cost": 0.000013,
    }
    assert "cost" not in usage_out(usage, None)
