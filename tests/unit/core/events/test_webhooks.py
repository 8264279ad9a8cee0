"""Webhook signatures and the SSRF rules on webhook URLs (core/events/webhooks.py), with no network."""

from __future__ import annotations

import asyncio
import time

import pytest

from tollway.core.events.webhooks import DeliveryError, Poster, sign, verify
from tollway.errors import TollwayError
from tollway.settings import ConfigurationError, Settings
from tollway.store.outbox import backoff

SECRET = b"whsec_test"
BODY = b'{"id":"usage_req_1","cost_nano":5}'


def test_a_signature_verifies_and_nothing_else_does() -> None:
    header = sign(SECRET, BODY)
    assert header.startswith("t=") and ",v1=" in header
    assert verify(SECRET, BODY, header)
    assert not verify(b"another", BODY, header)
    assert not verify(SECRET, BODY + b" ", header)
    assert not verify(SECRET, BODY, "v1=deadbeef")
    old = sign(SECRET, BODY, int(time.time()) - 3600)
    assert not verify(SECRET, BODY, old)  # a replay of an old delivery


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://10.0.0.5/hook", "public internet address"),
        ("http://127.0.0.1:8080/hook", "public internet address"),
        ("http://169.254.169.254/", "public internet address"),
        ("http://[::ffff:127.0.0.1]/", "public internet address"),
        ("http://[fd00::1]/", "public internet address"),
        ("http://0.0.0.0/", "public internet address"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://example.com/", "http:// or https://"),
        ("http://u:p@8.8.8.8/", "credentials"),
        ("http://8.8.8.8:99999/", "malformed"),
        ("http://[::1/", "malformed"),
    ],
)
async def test_private_and_malformed_urls_are_refused(url: str, says: str) -> None:
    poster = Poster()
    try:
        with pytest.raises(TollwayError) as caught:
            await poster.vet(url)
        assert caught.value.status == 400 and says in caught.value.message
        assert caught.value.param == "url"
    finally:
        await poster.aclose()


async def test_a_public_address_is_pinned_and_an_allowed_host_passes() -> None:
    poster = Poster(allow_hosts="127.0.0.1, [::1]")
    try:
        assert await poster.vet("https://8.8.8.8/hook?x=1") == (
            "https://8.8.8.8:443/hook?x=1",
            "8.8.8.8",
            "8.8.8.8",
        )
        assert (await poster.vet("http://127.0.0.1:9/h"))[0] == "http://127.0.0.1:9/h"
        assert (await poster.vet("http://[::1]:9/h"))[0] == "http://[::1]:9/h"
        with pytest.raises(TollwayError):
            await poster.vet("http://10.0.0.1/h")  # only the listed hosts
    finally:
        await poster.aclose()


async def test_a_refused_or_unreachable_url_is_a_delivery_error() -> None:
    poster = Poster(allow_hosts="127.0.0.1", timeout_seconds=1)
    try:
        with pytest.raises(DeliveryError, match="public internet address"):
            await poster.post("http://10.0.0.1/h", BODY, "e1", SECRET)
        with pytest.raises(DeliveryError, match="unreachable"):
            await poster.post("http://127.0.0.1:1/h", BODY, "e1", SECRET)
    finally:
        await poster.aclose()


def test_backoff_doubles_within_its_bounds() -> None:
    for attempts in range(40):
        delay = backoff(attempts, 1.0, 300.0)
        assert min(300.0, 2.0**attempts) * 0.5 <= delay <= min(300.0, 2.0**attempts)


def test_a_webhook_needs_its_secret() -> None:
    with pytest.raises(ConfigurationError, match="TOLLWAY_EVENTS_WEBHOOK_SECRET"):
        Settings(events_webhook_url="https://example.com/hook").check_events()
    assert Settings(events_nats_url="nats://x:4222").events_sinks == ("nats",)
    assert Settings().events_sinks == ()
    secret = Settings(events_webhook_url="https://e.com/h", events_webhook_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(secret)


async def test_a_receiver_that_never_answers_cannot_hold_the_publisher() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = Poster(allow_hosts="127.0.0.1", timeout_seconds=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="unreachable"):
            await poster.post(f"http://127.0.0.1:{port}/h", BODY, "e1", SECRET)
        assert time.monotonic() - started < 3
    finally:
        await poster.aclose()
        server.close()
