"""Venice chat extensions without a server: suffixes, thinking, model names, characters, search."""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

import httpx2
import pytest

from tollway.base.config import CatalogConfig, CatalogError
from tollway.base.fetch import UrlFetcher
from tollway.core.caller import Caller
from tollway.core.catalog import names as model_names
from tollway.core.catalog.catalog import Catalog
from tollway.core.inference import chat_plan, venice
from tollway.core.inference.search import Citation, SearchUnavailable, page_text, urls_in
from tollway.core.inference.thinking import ThinkStripper, strip_thinking
from tollway.errors import ErrorCode, TollwayError

SFW = Caller(scope="inference", account_id="acct_1", key_id="key_1")
ADULT = Caller(
    scope="inference", account_id="acct_1", key_id="key_1", content_tier="uncensored", age_verified=True
)


def _model(id_: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "routes": [{"provider": extra.pop("provider", "up"), "model": id_}],
        "pricing": {"input": "1", "output": "2"},
        **extra,
    }


def catalog(**extra: Any) -> Catalog:
    config: dict[str, Any] = {
        "providers": [
            {"id": "up", "kind": "openai", "base_url": "http://up/v1"},
            {"id": "local", "kind": "local"},
            {"id": "anth", "kind": "anthropic", "base_url": "http://a/v1"},
        ],
        "models": [
            _model("big", traits=["default", "function_calling_default"], compatible_with=["gpt-4o"]),
            _model("small", traits=["fastest", "default"], system_prompt="Operator prompt."),
            _model("thinker", capabilities=["reasoning"]),
            _model("claude-only", provider="anth"),
            _model("embed", type="embedding", traits=["default"]),
            _model("old", deprecation={"date": "2030-01-01", "replacement": "big"}),
            _model("gone", deprecation={"date": "2020-01-01"}),
            _model("moved", deprecation={"date": "2020-01-01", "replacement": "small"}),
            _model("llama3:8b"),
            _model("tiny", sampling={"temperature": 0, "top_p": 0.5}),
        ],
        "compatibility": {"gpt-4o-mini": "small", "text-embedding-3-small": "embed"},
        "characters": [
            {
                "slug": "sage",
                "name": "Sage",
                "system_prompt": "You are a sage.",
                "settings": {"temperature": 0.3},
            },
            {
                "slug": "pinned",
                "name": "Pinned",
                "system_prompt": "P.",
                "model": "thinker",
                "web_enabled": False,
            },
            {"slug": "spicy", "name": "Spicy", "system_prompt": "S.", "adult": True},
        ],
    }
    config.update(extra)
    return Catalog(CatalogConfig.model_validate(config))


# -- feature suffixes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base", "params"),
    [
        ("big", "big", {}),
        ("default:enable_web_search=auto", "default", {"enable_web_search": "auto"}),
        (
            "default:enable_web_search=on&include_venice_system_prompt=false",
            "default",
            {"enable_web_search": "on", "include_venice_system_prompt": False},
        ),
        ("qwen3-4b:strip_thinking_response=true", "qwen3-4b", {"strip_thinking_response": True}),
        ("qwen3-4b:disable_thinking=TRUE", "qwen3-4b", {"disable_thinking": True}),
        ("default:character_slug=alan-watts", "default", {"character_slug": "alan-watts"}),
        ("default:enable_web_search=true", "default", {"enable_web_search": "on"}),
        (
            "default:enable_web_citations=true&enable_web_citations=true",
            "default",
            {"enable_web_citations": True},
        ),
        ("default:character_slug=a%20b", "default", {"character_slug": "a b"}),
    ],
)
def test_suffixes_that_parse(model: str, base: str, params: dict[str, Any]) -> None:
    assert venice.split_suffix(model) == (base, params)


@pytest.mark.parametrize(
    "model",
    [
        "default:",
        ":enable_web_search=on",
        "default:enable_web_search",
        "default:enable_web_search=",
        "default:=on",
        "default:enable_web_search=on&",
        "default:enable_web_search=sometimes",
        "default:strip_thinking_response=yes",
        "default:no_such_key=1",
        "default:disable_thinking=true&disable_thinking=false",  # conflicting within the suffix
    ],
)
def test_malformed_suffixes_are_400_naming_model(model: str) -> None:
    with pytest.raises(TollwayError) as caught:
        venice.split_suffix(model)
    assert caught.value.code is ErrorCode.VALIDATION
    assert caught.value.param == "model"


def test_the_body_wins_over_the_suffix_and_booleans_are_accepted_for_web_search() -> None:
    _, suffix = venice.split_suffix("default:enable_web_search=on&strip_thinking_response=true")
    body = venice.body_params({"venice_parameters": {"enable_web_search": False, "unknown": 1}})
    params = venice.merge(suffix, body)
    assert params.enable_web_search == "off"
    assert params.strip_thinking_response is True
    assert params.include_venice_system_prompt is True
    with pytest.raises(TollwayError) as caught:
        venice.body_params({"venice_parameters": {"disable_thinking": "maybe"}})
    assert caught.value.param == "venice_parameters.disable_thinking"


def test_echo_has_every_required_key() -> None:
    echo = venice.VeniceParams(character_slug="sage").echo([])
    for key in (
        "enable_web_search",
        "enable_web_citations",
        "include_venice_system_prompt",
        "include_search_results_in_stream",
        "strip_thinking_response",
        "disable_thinking",
    ):
        assert key in echo
    assert echo["web_search_citations"] == [] and echo["character_slug"] == "sage"


# -- thinking ----------------------------------------------------------------------------------

TEXTS = [
    ("<think>plan</think>\n\nAnswer.", "Answer."),
    ("Before <think>x</think> after", "Before after"),
    ("no tags at all < think > <thin", "no tags at all < think > <thin"),
    ("a<think>1</think>b<think>2</think>c", "abc"),
    ("<think>never closed", ""),
    ("x </thinking> y", "x </thinking> y"),
    ("<<think>>x</think>>", "<>"),
]


@pytest.mark.parametrize(("text", "expected"), TEXTS)
def test_strip_whole_text(text: str, expected: str) -> None:
    assert strip_thinking(text) == expected


def test_lone_closing_tag_drops_what_came_before() -> None:
    assert strip_thinking("reasoning here</think>\nThe answer") == "The answer"


@pytest.mark.parametrize(("text", "expected"), TEXTS)
def test_stream_state_machine_any_split_gives_the_same_text(text: str, expected: str) -> None:
    rng = random.Random(7)
    splits = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    splits += [list(text)]  # one character per chunk
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(4, len(text))))
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    for pieces in splits:
        stripper = ThinkStripper()
        assert "".join(stripper.feed(p) for p in pieces) + stripper.flush() == expected, pieces


def test_stream_holds_back_only_a_possible_tag_start() -> None:
    stripper = ThinkStripper()
    assert stripper.feed("Hello <thi") == "Hello "
    assert stripper.feed("s is not a tag") == "<this is not a tag"


# -- model names -------------------------------------------------------------------------------


def test_resolution_order_id_then_trait_then_compatibility() -> None:
    c = catalog()
    assert model_names.resolve(c, "small", "text").id == "small"
    assert model_names.resolve(c, "default", "text").id == "big"  # first claimant wins
    assert model_names.resolve(c, "fastest", "text").id == "small"
    assert model_names.resolve(c, "default", "embedding").id == "embed"  # traits are per type
    assert model_names.resolve(c, "gpt-4o", "text").id == "big"  # compatible_with
    assert model_names.resolve(c, "gpt-4o-mini", "text").id == "small"  # compatibility:
    for name, model_type in (("nope", "text"), ("text-embedding-3-small", "text"), ("embed", "text")):
        with pytest.raises(TollwayError) as caught:
            model_names.resolve(c, name, model_type)
        assert caught.value.code is ErrorCode.INVALID_MODEL


def test_traits_and_mapping_views_filter_by_type() -> None:
    c = catalog()
    assert model_names.traits(c, "text") == {
        "default": "big",
        "function_calling_default": "big",
        "fastest": "small",
    }
    assert model_names.compatibility(c, "text") == {"gpt-4o-mini": "small", "gpt-4o": "big"}
    assert model_names.compatibility(c, "embedding") == {"text-embedding-3-small": "embed"}


def test_deprecation_before_and_after_the_date() -> None:
    c = catalog()
    model, headers = model_names.deprecation(c, c.models["old"], today=date(2029, 12, 31))
    assert model.id == "old"
    assert headers["x-venice-model-deprecation-date"] == "2030-01-01"
    assert "use big" in headers["x-venice-model-deprecation-warning"]
    model, headers = model_names.deprecation(c, c.models["old"], today=date(2030, 1, 1))
    assert model.id == "big" and "big answered instead" in headers["x-tollway-model-deprecation-warning"]
    with pytest.raises(TollwayError) as caught:
        model_names.deprecation(c, c.models["gone"])
    assert caught.value.code is ErrorCode.MODEL_DEPRECATED and caught.value.status == 410
    assert model_names.deprecation(c, c.models["big"]) == (c.models["big"], {})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"compatibility": {"gpt-4o": "missing"}}, "not a model id"),
        ({"compatibility": {"small": "big"}}, "already a model id"),
        (
            {"characters": [{"slug": "x", "name": "X", "system_prompt": "p", "model": "missing"}]},
            "pins model",
        ),
        (
            {"characters": [{"slug": "x", "name": "X", "system_prompt": "p", "settings": {"evil": 1}}]},
            "settings",
        ),
    ],
)
def test_catalog_refuses_bad_venice_entries(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog(**extra)


def test_catalog_refuses_a_bad_deprecation() -> None:
    bad = [
        _model("a", deprecation={"date": "soon"}),
        _model("b", deprecation={"date": "2030-01-01", "replacement": "zz"}),
    ]
    with pytest.raises(CatalogError, match=r"YYYY-MM-DD.*not a model id"):
        Catalog(
            CatalogConfig.model_validate(
                {"providers": [{"id": "up", "kind": "openai", "base_url": "http://x"}], "models": bad}
            )
        )


# -- the chat plan -----------------------------------------------------------------------------


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "big", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_prepare_resolves_suffix_traits_and_strips_venice_parameters() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c,
        _body(
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
    with_prompt = chat_plan.prepare(c, _body(model="small"), SFW, search_configured=False)
    assert with_prompt.body["messages"][0] == {"role": "system", "content": "Operator prompt."}
    colon = chat_plan.prepare(c, _body(model="llama3:8b"), SFW, search_configured=False)
    assert colon.model.id == "llama3:8b"


def test_characters_apply_prompt_settings_pinned_model_and_web_switch() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c, _body(model="small", venice_parameters={"character_slug": "sage"}), SFW, search_configured=False
    )
    assert [m["content"] for m in plan.body["messages"]] == ["Operator prompt.", "You are a sage.", "hi"]
    assert plan.body["temperature"] == 0.3
    explicit = chat_plan.prepare(
        c, _body(model="big:character_slug=sage", temperature=1.0), SFW, search_configured=False
    )
    assert explicit.body["temperature"] == 1.0
    pinned = chat_plan.prepare(
        c,
        _body(model="big:character_slug=pinned&enable_web_search=auto"),
        SFW,
        search_configured=True,
    )
    assert pinned.model.id == "thinker" and pinned.params.enable_web_search == "off" and not pinned.may_search
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, _body(model="big:character_slug=nobody"), SFW, search_configured=False)
    assert caught.value.code is ErrorCode.CHARACTER_NOT_FOUND and caught.value.status == 404
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(
            c, _body(venice_parameters={"character_slug": "spicy"}), SFW, search_configured=False
        )
    assert caught.value.code is ErrorCode.CONTENT_TIER_FORBIDDEN
    assert (
        chat_plan.prepare(
            c, _body(venice_parameters={"character_slug": "spicy"}), ADULT, search_configured=False
        ).model.id
        == "big"
    )


def test_disable_thinking_tells_reasoning_upstreams() -> None:
    c = catalog()
    plan = chat_plan.prepare(c, _body(model="thinker:disable_thinking=true"), SFW, search_configured=False)
    assert plan.body["chat_template_kwargs"] == {"enable_thinking": False}
    plain = chat_plan.prepare(c, _body(model="big:disable_thinking=true"), SFW, search_configured=False)
    assert "chat_template_kwargs" not in plain.body


def test_web_search_on_without_a_provider_is_400_and_auto_is_off() -> None:
    c = catalog()
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, _body(model="big:enable_web_search=on"), SFW, search_configured=False)
    assert caught.value.param == "venice_parameters.enable_web_search"
    assert "TOLLWAY_SEARCH_URL" in caught.value.message
    auto = chat_plan.prepare(c, _body(model="big:enable_web_search=auto"), SFW, search_configured=False)
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
        chat_plan.prepare(c, _body(response_format=value), SFW, search_configured=False).body[
            "response_format"
        ]
        == expected
    )


def test_response_format_on_a_runtime_without_it_is_400() -> None:
    c = catalog()
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(
            c,
            _body(model="claude-only", response_format={"type": "json_object"}),
            SFW,
            search_configured=False,
        )
    assert caught.value.code is ErrorCode.UNSUPPORTED_CAPABILITY and caught.value.param == "response_format"
    with pytest.raises(TollwayError) as caught:
        chat_plan.prepare(c, _body(response_format={"type": "xml"}), SFW, search_configured=False)
    assert caught.value.param == "response_format.type"


class FakeSearch:
    def __init__(self, fail: bool = False) -> None:
        self.queries: list[str] = []
        self.fail = fail

    async def search(self, query: str, limit: int) -> list[Citation]:
        self.queries.append(query)
        if self.fail:
            raise SearchUnavailable("down")
        return [Citation("Sky", "https://example.org/sky", "Rayleigh scattering.", "2024-08-13T13:45:16")]

    async def aclose(self) -> None:
        return None


async def test_search_results_go_before_the_last_user_message_and_come_back_as_citations() -> None:
    c = catalog()
    body = _body(
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
    on = chat_plan.prepare(c, _body(model="big:enable_web_search=on"), SFW, search_configured=True)
    with pytest.raises(TollwayError) as caught:
        await on.augment(FakeSearch(fail=True))
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR
    auto = chat_plan.prepare(c, _body(model="big:enable_web_search=auto"), SFW, search_configured=True)
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
        _body(
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


def test_urls_and_page_text() -> None:
    assert urls_in("see https://a.example/x. and (http://b.example/y) ftp://c") == [
        "https://a.example/x",
        "http://b.example/y",
    ]
    assert page_text(b"<style>p{}</style><p>a&lt;b</p>") == ("", "a<b")


def test_stream_chunks_strip_thinking_across_boundaries_and_carry_results_first() -> None:
    c = catalog()
    plan = chat_plan.prepare(
        c,
        _body(model="big:strip_thinking_response=true&include_search_results_in_stream=true"),
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
    plain = chat_plan.prepare(c, _body(model="tiny"), SFW, search_configured=False)
    assert (plain.body["temperature"], plain.body["top_p"]) == (0, 0.5)
    own = chat_plan.prepare(c, _body(model="tiny", temperature=0.9), SFW, search_configured=False)
    assert (own.body["temperature"], own.body["top_p"]) == (0.9, 0.5)  # the caller's value wins
    sage = chat_plan.prepare(
        c, _body(model="tiny", venice_parameters={"character_slug": "sage"}), SFW, search_configured=False
    )
    assert sage.body["temperature"] == 0.3  # the character's setting wins over the model's default
    other = chat_plan.prepare(c, _body(model="small"), SFW, search_configured=False)
    assert "temperature" not in other.body and "top_p" not in other.body
