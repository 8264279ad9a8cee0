"""Bounded input (issue 19 item 4): request heads over 64 KiB → 431, bodies over their route's limit → 413
while they are read, JSON nested deeper than 64 levels or with numbers past 64 bits → 400 naming the
field. Each refusal costs nothing. The limits are api/limits.py's, listed in the README."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import orjson
import pytest

from tests.contract.refusals import assert_error, assert_refused, dialect_of, message_of, untouched
from tests.contract.servers import OPERATOR_KEY, Tollway

pytestmark = pytest.mark.slow
KIB, MIB = 1024, 1024 * 1024
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def _port(server: Tollway) -> int:
    return int(server.url.rsplit(":", 1)[1])


def send_head(server: Tollway, start: bytes, filler: bytes, total: int) -> tuple[int, bytes]:
    """Send `start`, then `filler` until `total` bytes or an answer; (filler bytes sent, the answer)."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
        sock.sendall(start)
        sent = 0
        while sent < total and not select.select([sock], [], [], 0.005)[0]:
            try:
                sock.sendall(filler)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(filler)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
        return sent, b"".join(chunks)


def head_answer(answer: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return int(status_line.split()[1]), headers, orjson.loads(body) if body else None


def test_a_64_mb_header_is_refused_431_after_64_kib_without_a_key(tollway: Tollway) -> None:
    sent, answer = send_head(
        tollway, b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-huge: ", b"a" * 8 * KIB, 64 * MIB
    )
    status, headers, body = head_answer(answer)
    assert status == 431 and headers["connection"] == "close"
    assert body["error"]["code"] == "HEADERS_TOO_LARGE"
    assert body["error"]["request_id"] == headers["x-request-id"]
    assert sent <= 256 * KIB  # refused as soon as the head passed 64 KiB, not after reading 64 MB
    assert httpx2.get(f"{tollway.url}/health").status_code == 200


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("a long URL", b"GET /health?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("many headers", b"GET /health HTTP/1.1\r\nhost: x\r\n" + b"x-h: 01234567\r\n" * 5000 + b"\r\n"),
    ],
)
def test_any_head_over_64_kib_is_431(tollway: Tollway, name: str, head: bytes) -> None:
    _, answer = send_head(tollway, head, b"", 0)
    assert head_answer(answer)[0] == 431, name


def test_a_head_of_exactly_64_kib_is_served(tollway: Tollway) -> None:
    start = b"GET /health HTTP/1.1\r\nhost: x\r\nx-pad: "
    pad = 64 * KIB - len(start) - 4
    _, answer = send_head(tollway, start + b"a" * pad + b"\r\n\r\n", b"", 0)
    assert head_answer(answer)[0] == 200
    _, answer = send_head(tollway, start + b"a" * (pad + 1) + b"\r\n\r\n", b"", 0)
    assert head_answer(answer)[0] == 431


# (route, its body limit): api/limits.py; the inference routes' is TOLLWAY_MAX_BODY_BYTES (25 MiB).
LIMITS = [
    ("/v1/chat/completions", 25 * MIB),
    ("/api/v1/embeddings", 25 * MIB),
    ("/v1/messages", 25 * MIB),
    ("/v1beta/models/fake-chat:generateContent", 25 * MIB),
    ("/v1/audio/transcriptions", 26 * MIB),
    ("/v1/image/edit", 15 * MIB),
    ("/api/v1/image/upscale", 15 * MIB),
    ("/v1/images/generations", 1 * MIB),
    ("/v1/audio/speech", 1 * MIB),
    ("/v1/account/calculate-cost", 1 * MIB),
]


@pytest.mark.parametrize(("path", "limit"), LIMITS)
def test_a_body_over_its_routes_limit_is_413_before_it_is_read(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], path: str, limit: int
) -> None:
    account_id, key = funded("1.00")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with untouched(tollway, account_id, tollway.fake_calls):
        response = httpx2.post(f"{tollway.url}{path}", content=b" " * (limit + 1), headers=headers)
        # In the route's own envelope, though the route never ran.
        assert_refused(response, 413, code="REQUEST_TOO_LARGE", dialect=dialect_of(path))
        assert str(limit) in message_of(response)
        assert response.headers["connection"] == "close"  # the rest of the body is never read


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"model": "local-procedural", "prompt": "'
    for _ in range(size // (64 * KIB)):
        yield b"a" * 64 * KIB
    yield b'"}'


def test_a_body_without_a_length_is_counted_as_it_arrives(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with untouched(tollway, account_id):
        response = httpx2.post(f"{tollway.url}/v1/image/generate", content=_chunks(2 * MIB), headers=headers)
        assert_error(response, 413, "REQUEST_TOO_LARGE")
    response = httpx2.post(  # just under: read whole, then refused for what it says
        f"{tollway.url}/v1/admin/accounts",
        content=orjson.dumps({"name": "n" * (MIB - 100)}),
        headers={"authorization": f"Bearer {OPERATOR_KEY}", "content-type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION", "name")


def _nested(depth: int) -> bytes:
    return b'{"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "extra": ' + (
        b"[" * depth + b"]" * depth + b"}"
    )


@pytest.mark.parametrize("depth", [64, 256, 600, 1024, 1025, 100_000])
@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/chat/completions", "openai"),
        ("/v1/messages", "anthropic"),
        ("/v1beta/models/fake-chat:generateContent", "gemini"),
        ("/v1/image/generate", "openai"),
    ],
)
def test_json_nested_deeper_than_64_is_400_before_anything_parses_it(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], depth: int, path: str, dialect: str
) -> None:
    account_id, key = funded("1.00")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with untouched(tollway, account_id, tollway.fake_calls):
        response = httpx2.post(f"{tollway.url}{path}", content=_nested(depth), headers=headers)
        assert_refused(response, 400, dialect=dialect)  # type: ignore[arg-type]
        assert "deeper than 64" in response.text


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'"temperature": 1e5000', "temperature"),
        (b'"max_tokens": ' + b"9" * 5000, "max_tokens"),
        (b'"seed": 1e' + b"9" * 5000, "seed"),
        (b'"seed": 18446744073709551615', "seed"),  # 2^64 - 1: JSON allows it, no column holds it
        (b'"seed": -9223372036854779000', "seed"),
        (b'"max_tokens": 1e300', "max_tokens"),
        (b'"metadata": {"deep": [1, 2, ' + b"1" * 400 + b"]}", "metadata.deep.2"),
    ],
)
def test_absurd_numbers_are_400_naming_the_field(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], raw: bytes, param: str
) -> None:
    account_id, key = funded("1.00")
    body = b'{"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], ' + raw + b"}"
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with untouched(tollway, account_id, tollway.fake_calls):
        response = httpx2.post(f"{tollway.url}/v1/chat/completions", content=body, headers=headers)
        assert_error(response, 400, "VALIDATION", param)
        assert "out of range" in message_of(response)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"width": "1e" + "9" * 5000}, "width"),
        ({"steps": "9" * 5000}, "steps"),
        ({"cfg_scale": "-1e" + "9" * 5000}, "cfg_scale"),
        ({"seed": "nan"}, "seed"),
    ],
)
def test_a_media_request_with_a_5000_digit_exponent_is_400(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], fields: dict[str, str], param: str
) -> None:
    account_id, key = funded("1.00")
    base = {"model": "local-procedural", "prompt": "a red circle", "width": "64", "height": "64"}
    auth = {"authorization": f"Bearer {key}"}
    json_body = b'{"model": "local-procedural", "prompt": "x", "' + param.encode() + b'": '
    json_body += fields[param].encode() + b"}"
    with untouched(tollway, account_id):
        form = httpx2.post(f"{tollway.url}/v1/image/generate", data={**base, **fields}, headers=auth)
        assert_error(form, 400, "VALIDATION", param)
        if fields[param] != "nan":
            as_json = httpx2.post(
                f"{tollway.url}/v1/image/generate",
                content=json_body,
                headers={**auth, "content-type": "application/json"},
            )
            assert_error(as_json, 400, "VALIDATION", param)


def test_numbers_and_depth_inside_the_limits_pass(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    body = {**CHAT, "seed": 2**63 - 1, "metadata": {"x": -(2**63) + 1, "y": 1e18, "z": 1e-300}}
    assert httpx2.post(f"{tollway.url}/v1/chat/completions", json=body, headers=headers).is_success
    # 63 lists inside the top object: 64 levels, the most a body may have.
    response = httpx2.post(f"{tollway.url}/v1/chat/completions", content=_nested(63), headers=headers)
    assert response.status_code == 200, response.text
