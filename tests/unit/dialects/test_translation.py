"""dialects/translation.py and the translations that use it: refusals by name, neutral values, efforts."""

from __future__ import annotations

import pytest

from tollway.dialects import translation
from tollway.dialects.gemini.embeddings import embed_request_to_openai, embed_response_from_openai
from tollway.dialects.gemini.inbound import json_schema
from tollway.errors import TollwayError


@pytest.mark.parametrize(
    ("budget", "effort"),
    [
        (0, "none"),
        (-5, "none"),
        (1, "minimal"),
        (1024, "minimal"),
        (2047, "minimal"),
        (2048, "low"),
        (8191, "low"),
        (8192, "medium"),
        (16384, "high"),
        (10**6, "high"),
    ],
)
def test_a_budget_becomes_the_largest_effort_not_above_it(budget: int, effort: str) -> None:
    assert translation.effort_of_budget(budget) == effort
    if budget == translation.EFFORT_BUDGETS[effort]:  # the table's own budgets round-trip exactly
        assert translation.EFFORT_BUDGETS[translation.effort_of_budget(budget)] == budget


def test_neutral_values_pass_and_others_are_refused_by_name() -> None:
    fields = ("n", "presence_penalty", "logprobs", "seed")
    translation.refuse_present({"n": 1, "presence_penalty": 0, "logprobs": False}, fields, "x")
    with pytest.raises(TollwayError) as refused:
        translation.refuse_present({"n": 1, "seed": 0}, fields, "an upstream")
    assert refused.value.param == "seed" and "`seed`" in refused.value.message


def test_json_object_is_refused_where_only_a_schema_is_taken() -> None:
    assert translation.json_schema_of({"type": "text"}, "x") is None
    schema = {"type": "object"}
    assert (
        translation.json_schema_of({"type": "json_schema", "json_schema": {"schema": schema}}, "x") == schema
    )
    with pytest.raises(TollwayError) as refused:
        translation.json_schema_of({"type": "json_object"}, "x")
    assert refused.value.param == "response_format.type"


def test_gemini_openapi_schema_becomes_json_schema() -> None:
    given = {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING", "nullable": True}},
        "items": [{"type": "INTEGER"}],
    }
    assert json_schema(given) == {
        "type": "object",
        "properties": {"a": {"type": ["string", "null"]}},
        "items": [{"type": "integer"}],
    }


def test_gemini_embed_requests_and_answers() -> None:
    one = {"content": {"parts": [{"text": "a "}, {"text": "b"}]}, "outputDimensionality": 8}
    assert embed_request_to_openai(one, "m", batch=False) == {"model": "m", "input": ["a b"], "dimensions": 8}
    batch = {"requests": [{"model": "models/m", "content": {"parts": [{"text": t}]}} for t in ("x", "y")]}
    assert embed_request_to_openai(batch, "m", batch=True) == {"model": "m", "input": ["x", "y"]}
    mixed = {
        "requests": [
            {**r, "outputDimensionality": n} for r, n in zip(batch["requests"], (8, 16), strict=True)
        ]
    }
    with pytest.raises(TollwayError) as refused:
        embed_request_to_openai(mixed, "m", batch=True)
    assert refused.value.param == "requests"
    result = {"data": [{"embedding": [0.5]}], "usage": {"prompt_tokens": 2, "total_tokens": 2, "cost": 2e-7}}
    assert embed_response_from_openai(result, batch=False) == {
        "embedding": {"values": [0.5]},
        "usageMetadata": {"promptTokenCount": 2, "totalTokenCount": 2, "cost": 2e-7},
    }


def test_cache_hints_leave_bodies_for_runtimes_that_cache_by_themselves() -> None:
    hint = {"type": "ephemeral"}
    plain = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}
    assert translation.without_cache_hints(plain) is plain  # nothing copied when there is nothing to strip
    hinted = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a", "cache_control": hint}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "b"}, {"type": "image_url", "cache_control": hint}],
            },
        ],
        "tools": [{"type": "function", "cache_control": hint}],
    }
    bare = translation.without_cache_hints(hinted)
    assert bare["messages"][0] == {"role": "system", "content": "a"}
    assert bare["messages"][1]["content"] == [{"type": "text", "text": "b"}, {"type": "image_url"}]
    assert bare["tools"] == [{"type": "function"}]
    assert hinted["tools"][0]["cache_control"] == hint  # the caller's body is left as it was
