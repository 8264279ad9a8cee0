"""api/limits.py: the JSON reader's bounds and the body limit of each route."""

from __future__ import annotations

import pytest

from tollway.api.limits import (
    DEFAULT_BODY_BYTES,
    IMAGE_BODY_BYTES,
    JSON_MAX_DEPTH,
    MCP_BODY_BYTES,
    UPLOAD_BODY_BYTES,
    body_limit,
    check_url,
    parse_json,
)
from tollway.errors import TollwayError


def refused(raw: bytes) -> TollwayError:
    with pytest.raises(TollwayError) as caught:
        parse_json(raw)
    assert caught.value.status == 400
    return caught.value


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_not() -> None:
    deepest = b"[" * JSON_MAX_DEPTH + b"]" * JSON_MAX_DEPTH
    assert parse_json(deepest) is not None
    assert "deeper than 64" in refused(b"[" + deepest + b"]").message
    assert refused(b'{"a": {"b": ' + b"[" * 70 + b"]" * 70 + b"}}").param == "a"


@pytest.mark.parametrize("depth", [65, 255, 256, 1023, 1024, 1025, 50_000])
def test_any_depth_past_the_limit_is_a_400_never_a_recursion_error(depth: int) -> None:
    assert "deeper than 64" in refused(b"[" * depth + b"]" * depth).message


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"t": 1e5000}', "t"),
        (b'{"t": -1e5000}', "t"),
        (b'{"n": ' + b"9" * 5000 + b"}", "n"),
        (b'{"a": [0, {"b": 1e' + b"9" * 5000 + b"}]}", "a.1.b"),
        (b'{"n": 9223372036854775808}', "n"),
        (b'{"n": -9223372036854779000}', "n"),
        (b'{"n": 18446744073709551616}', "n"),
        (b'{"n": 1e19}', "n"),
        (b"1e400", None),
    ],
)
def test_numbers_past_64_bits_are_refused_naming_the_field(raw: bytes, param: str | None) -> None:
    error = refused(raw)
    assert error.param == param and "out of range" in error.message


def test_numbers_within_64_bits_pass() -> None:
    body = b'{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1e18, "d": 1e-400, "e": 0.5}'
    assert parse_json(body) == {"a": 2**63 - 1, "b": -(2**63), "c": 1e18, "d": 0.0, "e": 0.5}


@pytest.mark.parametrize(
    ("raw", "param"),
    [(b'{"a": "x\\u0000"}', "a"), (b'{"a": [{"b\\u0000": 1}]}', "a.0"), (b'"\\u0000"', None)],
)
def test_nul_characters_are_refused(raw: bytes, param: str | None) -> None:
    error = refused(raw)
    assert error.param == param and "NUL" in error.message


def test_broken_json_is_a_plain_400() -> None:
    assert refused(b'{"a": ').message == "The body is not valid JSON."
    assert refused(b"NaN").message == "The body is not valid JSON."


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/chat/completions", 123),
        ("/api/v1/chat/completions", 123),
        ("/v1/messages", 123),
        ("/v1beta/models/gemini-x:generateContent", 123),
        ("/api/v1beta/models/gemini-x:streamGenerateContent", 123),
        ("/v1/audio/transcriptions", UPLOAD_BODY_BYTES),
        ("/api/v1/image/edit", IMAGE_BODY_BYTES),
        ("/v1/videos/generate", IMAGE_BODY_BYTES),
        ("/v1/admin/accounts", DEFAULT_BODY_BYTES),
        ("/v1/chat/completions/extra", DEFAULT_BODY_BYTES),
        ("/health", DEFAULT_BODY_BYTES),
        ("/mcp", MCP_BODY_BYTES),
        ("/v1/mcp", DEFAULT_BODY_BYTES),
    ],
)
def test_each_route_has_its_body_limit(path: str, limit: int) -> None:
    assert body_limit(path, 123) == limit


def test_a_nul_in_the_url_is_refused() -> None:
    check_url("/v1/models", b"type=text")
    for path, query in (("/v1/a\x00b", b""), ("/v1/models", b"id=%00"), ("/v1/models", b"id=\x00")):
        with pytest.raises(TollwayError):
            check_url(path, query)
