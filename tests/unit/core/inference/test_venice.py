"""Venice model feature suffixes and venice_parameters (core/inference/venice.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.core.inference import venice
from tollway.errors import ErrorCode, TollwayError


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
def test_malformed_suffixes_are_400_namingmodel_entry(model: str) -> None:
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
        "enable_e2ee",
        "enable_web_search",
        "enable_web_citations",
        "include_venice_system_prompt",
        "include_search_results_in_stream",
        "strip_thinking_response",
        "disable_thinking",
    ):
        assert key in echo
    assert echo["web_search_citations"] == [] and echo["character_slug"] == "sage"


def test_enable_e2ee_false_is_accepted_and_true_is_a_400_saying_e2ee_is_not_offered() -> None:
    assert venice.body_params({"venice_parameters": {"enable_e2ee": False}}) == {"enable_e2ee": False}
    assert venice.split_suffix("m:enable_e2ee=false") == ("m", {"enable_e2ee": False})
    for call in (
        lambda: venice.body_params({"venice_parameters": {"enable_e2ee": True}}),
        lambda: venice.split_suffix("m:enable_e2ee=true"),
    ):
        with pytest.raises(TollwayError) as refused:
            call()
        assert refused.value.code is ErrorCode.VALIDATION and "E2EE" in refused.value.message
    with pytest.raises(TollwayError) as typed:
        venice.body_params({"venice_parameters": {"enable_e2ee": "yes"}})
    assert typed.value.param == "venice_parameters.enable_e2ee"
