"""URL rules for client-supplied image URLs (DESIGN §8): scheme, public addresses, size, redirects."""

from __future__ import annotations

import httpx2
import pytest

from tollway.base.fetch import UrlFetcher, embedded_ipv4, is_public
from tollway.errors import ErrorCode, TollwayError


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("not-an-ip", False),
        # IPv6 carrying IPv4: judged by the IPv4 address it delivers to
        ("::ffff:8.8.8.8", True),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("2001:0:808:808:0:0:80ff:fffe", False),  # Teredo, client 127.0.0.1 (XORed)
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::808:808", False),  # IPv4-compatible: deprecated, never a real destination
        ("::ffff:0:7f00:1", False),  # IPv4-translated 127.0.0.1
        ("fe80::1%eth0", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("2002:7f00:1::", ["127.0.0.1"]),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),  # RFC 4380's example
        ("64:ff9b::c000:221", ["192.0.2.33"]),
        ("::ffff:10.1.2.3", ["10.1.2.3"]),
        ("::a01:203", ["10.1.2.3"]),
        ("2606:4700::1111", []),
    ],
)
def test_embedded_ipv4(address: str, carried: list[str]) -> None:
    import ipaddress

    assert [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(address))] == carried


def _fetcher(addresses: dict[str, list[str]], handler: object, max_bytes: int = 1000) -> UrlFetcher:
    async def resolve(host: str, port: int) -> list[str]:
        return addresses[host]

    return UrlFetcher(
        max_bytes=max_bytes,
        resolver=resolve,
        transport=httpx2.MockTransport(handler),  # type: ignore[arg-type]
    )


async def _refused(fetcher: UrlFetcher, url: str) -> TollwayError:
    with pytest.raises(TollwayError) as caught:
        await fetcher.fetch(url)
    return caught.value


async def test_private_loopback_and_odd_schemes_are_refused_before_any_request() -> None:
    calls: list[httpx2.Request] = []
    fetcher = _fetcher(
        {"internal.example": ["10.0.0.5"], "mixed.example": ["93.184.216.34", "127.0.0.1"]},
        lambda request: calls.append(request) or httpx2.Response(200),
    )
    for url in (
        "http://127.0.0.1/x.png",
        "http://[::1]/x.png",
        "http://internal.example/x.png",
        "http://mixed.example/x.png",
        "ftp://example.com/x.png",
        "file:///etc/passwd",
        "http://user:pw@internal.example/",
    ):
        err = await _refused(fetcher, url)
        assert err.code is ErrorCode.VALIDATION and err.status == 400
    assert calls == []


async def test_a_public_url_is_fetched_from_the_vetted_address_with_its_host() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=b"png-bytes")

    fetcher = _fetcher({"cdn.example": ["93.184.216.34"]}, handler)
    assert await fetcher.fetch("https://cdn.example/a.png?x=1") == b"png-bytes"
    assert seen[0].url.host == "93.184.216.34"
    assert seen[0].headers["host"] == "cdn.example"
    assert seen[0].url.query == b"x=1"


async def test_oversized_bodies_are_413() -> None:
    fetcher = _fetcher(
        {"cdn.example": ["93.184.216.34"]}, lambda r: httpx2.Response(200, content=b"x" * 2000)
    )
    err = await _refused(fetcher, "http://cdn.example/big.png")
    assert err.code is ErrorCode.INVALID_FILE_SIZE and err.status == 413


async def test_a_redirect_to_a_private_address_is_refused() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data"})

    fetcher = _fetcher({"cdn.example": ["93.184.216.34"]}, handler)
    err = await _refused(fetcher, "http://cdn.example/a.png")
    assert err.status == 400


async def test_malformed_urls_are_400_naming_the_field_before_any_request() -> None:
    calls: list[httpx2.Request] = []
    fetcher = _fetcher(
        {"cdn.example": ["93.184.216.34"]}, lambda request: calls.append(request) or httpx2.Response(200)
    )
    for url in (
        "http://cdn.example:99999/a.png",
        "http://cdn.example:0/a.png",
        "http://cdn.example:port/a.png",
        "http://[::1",
        "http://[::1/a.png",
        "http://[not-an-address]/a.png",
        "http://]/a.png",
        "http://",
        "http:///a.png",
        "http://cdn.example/a\x00b.png",
        "http://host\x00.example/a.png",
        "http://" + "a" * 300 + ".example/a.png",
        "http://[2002:7f00:1::]/a.png",
        "http://[64:ff9b::7f00:1]:8080/a.png",
    ):
        err = await _refused(fetcher, url)
        assert (err.code, err.status, err.param) == (ErrorCode.VALIDATION, 400, "image"), url
    assert calls == []


async def test_an_ipv6_literal_is_fetched_with_its_brackets_in_the_host_header() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=b"ok")

    fetcher = _fetcher({}, handler)
    assert await fetcher.fetch("http://[2606:4700::1111]:8080/a.png") == b"ok"
    assert seen[0].headers["host"] == "[2606:4700::1111]:8080"


async def test_a_redirect_to_a_malformed_url_is_400() -> None:
    fetcher = _fetcher(
        {"cdn.example": ["93.184.216.34"]},
        lambda request: httpx2.Response(302, headers={"location": "http://[::1/x"}),
    )
    err = await _refused(fetcher, "http://cdn.example/a.png")
    assert (err.status, err.param) == (400, "image")
