"""The OpenAI content helpers shared by the Anthropic and Gemini translations (dialects/content.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.dialects.anthropic.shapes import IMAGE_TYPES
from tollway.dialects.content import (
    Image,
    append_turn,
    collapse,
    data_url,
    image_of,
    image_part,
    inline_image_part,
    split_system,
    tool_call,
)
from tollway.errors import ErrorCode, TollwayError


def _part(url: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize(
    ("url", "media_type", "data"),
    [
        ("data:image/png;base64,iVBORw0KGgo=", "image/png", "iVBORw0KGgo="),
        ("data:image/webp;charset=x;base64,UklG", "image/webp", "UklG"),  # parameters before ;base64
        ("data:image/jpeg;base64,/9j/\n4AAQ", "image/jpeg", "/9j/\n4AAQ"),  # the payload is passed as is
        ("DATA:image/png;base64,AAAA", "image/png", "AAAA"),  # a URL scheme is case-insensitive
    ],
)
def test_a_base64_data_url_is_an_inline_image(url: str, media_type: str, data: str) -> None:
    assert data_url(url) == (media_type, data)
    assert image_of(_part(url)) == Image(url, media_type, data)


def test_a_data_url_without_a_media_type_is_octet_stream() -> None:
    assert data_url("data:;base64,AAAA") == ("application/octet-stream", "AAAA")


def _refused(part: dict[str, Any], media_types: frozenset[str] | None = None) -> TollwayError:
    with pytest.raises(TollwayError) as caught:
        image_of(part, media_types)
    error = caught.value
    assert (error.code, error.status, error.param) == (ErrorCode.INVALID_IMAGE_FORMAT, 400, "messages")
    return error


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png,iVBORw0KGgo=",  # not base64: percent-encoded bytes
        "data:image/png;base64",  # no comma, no data
        "data:image/png;base64,",  # no data
        "data:image/png;base64;charset=x,AAAA",  # ;base64 must come last
        "data:",
        "data:image/png;base64,@@not base64@@",  # outside the base64 alphabet
        "data:image/png;base64,%89PNG",
    ],
)
def test_a_bad_data_url_is_a_400_not_an_upstream_failure(url: str) -> None:
    assert "base64" in _refused(_part(url)).message


@pytest.mark.parametrize(
    "url", ["data:image/bmp;base64,Qk0=", "data:application/pdf;base64,JVBERi0=", "data:;base64,AAAA"]
)
def test_a_media_type_the_upstream_refuses_is_a_400(url: str) -> None:
    message = _refused(_part(url), IMAGE_TYPES).message
    assert "image/png" in message  # says what to send instead
    assert image_of(_part(url)) is not None  # no types given (Gemini): any media type goes


def test_media_types_match_case_insensitively() -> None:
    url = "data:image/PNG;base64,AAAA"
    assert image_of(_part(url), IMAGE_TYPES) == Image(url, "image/PNG", "AAAA")


def test_an_http_url_is_a_remote_image() -> None:
    for url in ("https://example.com/cat.png", "http://example.com/cat"):
        image = image_of(_part(url))
        assert image == Image(url) and image.data is None and image.media_type is None


def test_the_url_may_be_a_bare_string() -> None:
    assert image_of({"type": "image_url", "image_url": "https://x/y.jpg"}) == Image("https://x/y.jpg")


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text", "text": "data:image/png;base64,AAAA"},  # not an image part
        {"type": "image_url", "image_url": {"url": ""}},  # no URL
        {"type": "image_url", "image_url": {"url": 5}},
        {"type": "image_url"},
        {"type": "input_image", "image_url": "https://x/y.png"},
    ],
)
def test_parts_without_an_image_url_have_no_image(part: dict[str, Any]) -> None:
    assert image_of(part) is None


def test_inline_images_come_back_as_data_url_parts() -> None:
    assert inline_image_part("image/jpeg", "AAA") == image_part("data:image/jpeg;base64,AAA")
    assert inline_image_part(None, None) == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,"},
    }


def test_text_only_content_collapses_to_a_string() -> None:
    text = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert collapse(text) == "ab"
    mixed = [*text, image_part("https://x/y.png")]
    assert collapse(mixed) is mixed


def test_consecutive_turns_of_one_role_are_merged() -> None:
    turns: list[dict[str, Any]] = []
    append_turn(turns, "user", [{"text": "a"}], "parts")
    append_turn(turns, "user", [{"text": "b"}], "parts")
    append_turn(turns, "model", [], "parts")  # nothing to add: no turn
    append_turn(turns, "model", [{"text": "c"}], "parts")
    assert turns == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]},
    ]


def test_system_and_developer_messages_are_split_off() -> None:
    messages = [
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        {"role": "system", "content": ""},  # empty: dropped
    ]
    assert split_system(messages) == ("one\n\ntwo", [{"role": "user", "content": "hi"}])
    assert split_system([]) == ("", [])


def test_tool_calls_carry_their_arguments_as_json_text() -> None:
    assert tool_call("c1", "f", {"a": 1}) == {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a":1}'},
    }
    assert tool_call(None, "f", None)["function"]["arguments"] == "{}"
