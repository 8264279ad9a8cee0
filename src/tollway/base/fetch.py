"""Fetching a URL a client gave us (image inputs, pages to scrape), under DESIGN §8's rules.

Only http(s); every address the host resolves to must be public (no private, loopback,
link-local, multicast or reserved range), checked for each redirect hop; an IPv6 address that
carries an IPv4 one (IPv4-mapped, -compatible or -translated, 6to4, Teredo, NAT64) must carry a
public one too, since a relay or translator would deliver the request to it; the connection goes to
the address we checked, so a second DNS answer cannot swap in an internal one (DNS rebinding);
the body is bounded in bytes and the whole fetch in seconds. Whatever is wrong with a URL (no host,
a bad port, unbalanced brackets, characters a URL cannot hold) is a 400 naming the field.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx2

from tollway.errors import ErrorCode, TollwayError

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 3


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


# IPv6 ranges whose low 32 bits are an IPv4 address the packet ends up at.
_LOW_32_IS_IPV4 = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
)
# NAT64 for local use (RFC 8215): the IPv4 address may sit at any of several offsets; never global.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address delivers to: mapped, compatible, translated, 6to4, Teredo
    (server and client; `.teredo` undoes the client's XOR), NAT64."""
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in network for network in _LOW_32_IS_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return _global(ip)
    if ip.ipv4_mapped is not None:
        return _global(ip.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d itself, nothing else
    if ip in _LOCAL_NAT64:
        return False
    return _global(ip) and all(_global(v4) for v4 in embedded_ipv4(ip))


_MALFORMED = (
    "The URL is malformed: use http(s)://host[:port]/path, a port from 1 to 65535, and an IPv6 "
    "address in brackets, e.g. http://[2001:db8::1]/image.png."
)


_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?", re.IGNORECASE)


def _is_hostname(host: str) -> bool:
    """A DNS name (internationalised ones in their IDNA form): no NUL, space or stray character."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label, or one over 63 characters
        return False
    return len(ascii_host) <= 253 and _HOSTNAME.fullmatch(ascii_host) is not None


def _refuse(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


class UrlFetcher:
    """GET a client-supplied URL safely. `resolver` and `transport` are replaceable for tests."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_seconds: float = 10.0,
        resolver: Resolver | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        noun: str = "image",  # what the URL is of, as refusals name it ("page" for augment/scrape)
    ) -> None:
        self.noun = noun
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self._resolver = resolver or _resolve
        self._transport = transport

    async def _vet(self, url: str, param: str) -> tuple[str, str, str]:
        """(url to connect to, Host header, TLS server name) after the address rules."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port  # .port raises on a port past 65535 or not a number
        except ValueError:
            raise _refuse(_MALFORMED, param) from None
        if parts.scheme not in ("http", "https") or not host:
            raise _refuse("Image URLs must start with http:// or https:// and name a host.", param)
        if parts.username or parts.password:
            raise _refuse("Image URLs must not carry credentials.", param)
        if port == 0:
            raise _refuse(_MALFORMED, param)
        port = port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]  # an address literal: nothing to resolve
        except ValueError:
            if not _is_hostname(host):
                raise _refuse(_MALFORMED, param) from None
            addresses = []
        try:
            addresses = addresses or await self._resolver(host, port)
        except (OSError, ValueError):
            raise _refuse(f"Cannot resolve the {self.noun} URL's host {host!r}.", param) from None
        if not addresses or not all(is_public(a) for a in addresses):
            # Never say which address it resolved to: that would map the internal network.
            raise _refuse("Image URLs must point to a public internet address.", param)
        address = addresses[0]
        netloc_host = f"[{address}]" if ":" in address else address
        netloc = f"{netloc_host}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        if ":" in host:
            host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
        return pinned, host_header, host

    async def fetch(self, url: str, *, param: str = "image", accept: str = "image/*") -> bytes:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._fetch(url, param, accept)
        except TimeoutError:
            raise _refuse(f"The {self.noun} URL did not answer in time.", param) from None

    async def _fetch(self, url: str, param: str, accept: str) -> bytes:
        async with httpx2.AsyncClient(
            transport=self._transport, follow_redirects=False, timeout=self.timeout_seconds
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                pinned, host_header, server_name = await self._vet(url, param)
                try:
                    request = client.build_request(
                        "GET",
                        pinned,
                        headers={"host": host_header, "accept": accept},
                        extensions={"sni_hostname": server_name},
                    )
                except (httpx2.InvalidURL, ValueError):  # e.g. control characters in the path
                    raise _refuse(_MALFORMED, param) from None
                try:
                    response = await client.send(request, stream=True)
                except httpx2.HTTPError:
                    raise _refuse(f"The {self.noun} URL could not be fetched.", param) from None
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = _follow(url, response.headers["location"], param, self.noun)
                        continue
                    if response.status_code != 200:
                        raise _refuse(f"The {self.noun} URL answered HTTP {response.status_code}.", param)
                    return await self._read(response, param)
                finally:
                    await response.aclose()
        raise _refuse(f"The {self.noun} URL redirected too many times.", param)

    async def _read(self, response: httpx2.Response, param: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(param)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise self._too_large(param)
        return bytes(body)

    def _too_large(self, param: str) -> TollwayError:
        return TollwayError(
            ErrorCode.INVALID_FILE_SIZE,
            f"The {self.noun} at the URL is larger than {self.max_bytes} bytes.",
            param=param,
        )


def _follow(url: str, location: str, param: str, noun: str = "image") -> str:
    try:
        return urljoin(url, location)
    except ValueError:  # the redirect's Location is itself malformed
        raise _refuse(f"The {noun} URL redirected to a malformed URL.", param) from None
