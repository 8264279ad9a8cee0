"""The chat plan: suffixes, characters, thinking, web search and scraping, response formats, sampling
(core/inference/chat_plan.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.unit.core.venice_catalog import ADULT, SFW, FakeSearch, catalog, chat_body
from tollway.base.fetch import UrlFetcher
from tollway.core.inference import chat_plan
from tollway.errors import ErrorCode, TollwayError


def test_prepare_resolves_suffix_traits_and_strips_venice_parameters() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c,
        chat_body(
            model="fastest:include_venice_system_prompt=false",
            venice_parameters={"strip_thinking_response": True},
        ),
        SFW,
        search_configured=False,
    )
    assert plan.model.id == "small"
    assert "venice_parameters" not in plan.body
    assert plan.body["messages"] == [{"role": "user", "content": "hi"}]
    assert plan.params.strip_thinking_response and not plan.params.include_venice_system_prompt
    with_prompt = chat_plan.prepare(c, chat_body(model="small"), SFW, search_configured=False)
    assert with_prompt.body["messages"][0] == {"role": "system", "content": "Operator prompt."}
    colon = chat_plan.prepare(c, chat_body(model="llama3:8b"), SFW, search_configured=False)
    assert colon.model.id == "llama3:8b"


def test_characters_apply_prompt_settings_pinned_model_and_web_switch() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c,
        chat_body(model="small", venice_parameters={"character_slug": "sage"}),
        SFW,
        search_configured=False,
    )
    assert [m["content"] for m in plan.body["messages"]] == ["Operator prompt.", "You are a sage.", "hi"]
    assert plan.body["temperature"] == 0.3
    explicit = chat_plan.prepare(
        c, chat_body(model="big:character_slug=sage", temperature=1.0), SFW, search_configured=False
    )
    assert explicit.body["temperature"] == 1.0
    pinned = chat_plan.prepare(
        c,
        chat_body(model="big:character_slug=pinned&enable_web_search=auto"),
        SFW,
        search_configured=True,
    )
    assert pinned.model.id == "thinker" and pinned.params.enable_web_search == "off" and not pinned.may_search
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, chat_body(model="big:character_slug=nobody"), SFW, search_configured=False)
    assert caught.value.code is ErrorCode.CHARACTER_NOT_FOUND and caught.value.status == 404
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(
            c, chat_body(venice_parameters={"character_slug": "spicy"}), SFW, search_configured=False
        )
    assert caught.value.code is ErrorCode.CONTENT_TIER_FORBIDDEN
    assert (
        chat_plan.prepare(
            c, chat_body(venice_parameters={"character_slug": "spicy"}), ADULT, search_configured=False
        ).model.id
        == "big"
    )


def test_disable_thinking_tells_reasoning_upstreams() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c, chat_body(model="thinker:disable_thinking=true"), SFW, search_configured=False
    )
    assert plan.body["chat_template_kwargs"] == {"enable_thinking": False}
    plain = chat_plan.prepare(c, chat_body(model="big:disable_thinking=true"), SFW, search_configured=False)
    assert "chat_template_kwargs" not in plain.body


def test_web_search_on_without_a_provider_is_400_and_auto_is_off() -> None:
    c = catalog()
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, chat_body(model="big:enable_web_search=on"), SFW, search_configured=False)
    assert caught.value.param == "venice_parameters.enable_web_search"
    assert "TOLLWAY_SEARCH_URL" in caught.value.message
    auto = chat_plan.prepare(c, chat_body(model="big:enable_web_search=auto"), SFW, search_configured=False)
    assert not auto.may_search and auto.context_allowance == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {
                "type": "json_schema",
                "json_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "response",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            },
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "m", "strict": True, "schema": {"type": "object"}},
            },
            {
                "type": "json_schema",
                "json_schema": {"name": "m", "strict": True, "schema": {"type": "object"}},
            },
        ),
        ({"type": "json_object"}, {"type": "json_object"}),
    ],
)
def test_response_format_layouts_are_normalised(value: dict[str, Any], expected: dict[str, Any]) -> None:
    c = catalog()
    assert (
        chat_plan.prepare(c, chat_body(response_format=value), SFW, search_configured=False).body[
            "response_format"
        ]
        == expected
    )


def test_response_format_reaches_every_runtime_and_an_unknown_type_is_400() -> None:
    c = catalog()
    # Every runtime now has structured output (Anthropic's output_config, issue 21): what a runtime
    # cannot take (json_object on Anthropic) its translation refuses by name (tests/contract/test_no_silent_drops.py).
    plan = chat_plan.prepare(
        c,
        chat_body(model="claude-only", response_format={"type": "json_object"}),
        SFW,
        search_configured=False,
    )
    assert plan.body["response_format"] == {"type": "json_object"}
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, chat_body(response_format={"type": "xml"}), SFW, search_configured=False)
    assert caught.value.param == "response_format.type"


async def test_search_results_go_before_the_last_user_message_and_come_back_as_citations() -> None:
    c = catalog()
    body = chat_body(
        messages=[{"role": "user", "content": "first"}, {"role": "user", "content": "why is the sky blue"}],
        venice_parameters={
            "enable_web_search": "on",
            "enable_web_citations": True,
            "return_search_results_as_documents": True,
        },
    )
    plan = chat_plan.prepare(c, body, SFW, search_configured=True)
    assert plan.context_allowance > 0
    search = FakeSearch()
    out = await plan.augment(search)
    assert search.queries == ["why is the sky blue"]
    assert out["messages"][1]["role"] == "system"
    assert "Rayleigh scattering." in out["messages"][1]["content"]
    assert "[REF]0[/REF]" in out["messages"][1]["content"]
    result = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "<think>x</think>Blue"}}]}
    plan.finish(result)
    echo = result["venice_parameters"]
    assert echo["web_search_citations"][0]["url"] == "https://example.org/sky"
    call = result["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "venice_web_search_documents"
    assert json.loads(call["function"]["arguments"])["documents"][0]["title"] == "Sky"
    assert result["choices"][0]["message"]["content"] == "<think>x</think>Blue"  # not asked to strip


async def test_search_failure_is_502_when_on_and_silent_when_auto() -> None:
    c = catalog()
    on = chat_plan.prepare(c, chat_body(model="big:enable_web_search=on"), SFW, search_configured=True)
    with pytest.raises(TollwayError) as caught:
        await on.augment(FakeSearch(fail=True))
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR
    auto = chat_plan.prepare(c, chat_body(model="big:enable_web_search=auto"), SFW, search_configured=True)
    assert (await auto.augment(FakeSearch(fail=True))) == auto.body and auto.citations == []


async def test_scraping_fetches_public_urls_only_and_bypasses_search() -> None:
    c = catalog()
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["host"])
        page = b"<html><title>Doc &amp; co</title><script>x()</script><body><p>Hello  page</p></body></html>"
        return httpx2.Response(200, content=page)

    async def resolve(host: str, port: int) -> list[str]:
        return {"public.example": ["93.184.216.34"], "internal.example": ["10.0.0.1"]}[host]

    fetcher = UrlFetcher(max_bytes=10_000, resolver=resolve, transport=httpx2.MockTransport(handler))  # type: ignore[arg-type]
    text = "read http://internal.example/a and https://public.example/doc, then summarise"
    plan = chat_plan.prepare(
        c,
        chat_body(
            messages=[{"role": "user", "content": text}],
            venice_parameters={"enable_web_scraping": True, "enable_web_search": "on"},
        ),
        SFW,
        search_configured=True,
    )
    search = FakeSearch()
    out = await plan.augment(search, fetcher)
    assert seen == ["public.example"]
    assert search.queries == []  # scraping bypasses search
    assert plan.citations == [
        {"title": "Doc & co", "url": "https://public.example/doc", "content": "Doc & co Hello page"}
    ]
    assert "Hello page" in out["messages"][0]["content"]


def test_stream_chunks_strip_thinking_across_boundaries_and_carry_results_first() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c,
        chat_body(model="big:strip_thinking_response=true&include_search_results_in_stream=true"),
        SFW,
        search_configured=False,
    )
    pieces = ["<thi", "nk>secret ", "plan</th", "ink>\n", "Ans", "wer <", "b>"]
    shown: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        delta: dict[str, Any] = {"content": piece}
        if i == 0:
            delta["role"] = "assistant"
        last = i == len(pieces) - 1
        chunk = {
            "id": "c",
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
        }
        out = plan.chunk(chunk)
        if out["choices"]:
            shown.append(out)
    assert "".join(ch["choices"][0]["delta"].get("content") or "" for ch in shown) == "Answer <b>"
    assert shown[0]["venice_parameters"]["web_search_citations"] == []
    assert "venice_parameters" not in shown[1]
    assert shown[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_models_sampling_defaults_fill_what_the_request_and_character_leave_out() -> None:
    c = catalog()
    plain = chat_plan.prepare(c, chat_body(model="tiny"), SFW, search_configured=False)
    assert (plain.body["temperature"], plain.body["top_p"]) == (0, 0.5)
    own = chat_plan.prepare(c, chat_body(model="tiny", temperature=0.9), SFW, search_configured=False)
    assert (own.body["temperature"], own.body["top_p"]) == (0.9, 0.5)  # the caller's value wins
    sage = chat_plan.prepare(
        c, chat_body(model="tiny", venice_parameters={"character_slug": "sage"}), SFW, search_configured=False
    )
    assert sage.body["temperature"] == 0.3  # the character's setting wins over the model's default
    other = chat_plan.prepare(c, chat_body(model="small"), SFW, search_configured=False)
    assert "temperature" not in other.body and "top_p" not in other.body


def test_logprobs_on_an_engine_without_them_is_400_and_passes_where_it_has_them() -> None:
    c = catalog()
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, chat_body(model="claude-only", logprobs=True), SFW, search_configured=False)
    assert caught.value.code is ErrorCode.UNSUPPORTED_CAPABILITY and caught.value.param == "logprobs"
    assert "anthropic" in caught.value.message
    plan = chat_plan.prepare(c, chat_body(logprobs=True, top_logprobs=2), SFW, search_configured=False)
    assert plan.body["logprobs"] is True and plan.body["top_logprobs"] == 2
    unasked = chat_plan.prepare(
        c, chat_body(model="claude-only", logprobs=False), SFW, search_configured=False
    )
    assert unasked.body["logprobs"] is False
