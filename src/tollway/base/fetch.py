"""Fetching a URL a client gave us (image inputs), under DESIGN §8's rules.

Only http(s); every address the host resolves to must be public (no private, loopback,
link-local, multicast or reserved range), checked for each redirect hop; the connection goes to
the address we checked, so a second DNS answer cannot swap in an internal one (DNS rebinding);
the body is bounded in bytes and the whole fetch in seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
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


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback in disguise
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


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
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self._resolver = resolver or _resolve
        self._transport = transport

    async def _vet(self, url: str, param: str) -> tuple[str, str, str]:
        """(url to connect to, Host header, TLS server name) after the address rules."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _refuse("Image URLs must start with http:// or https://.", param)
        if parts.username or parts.password:
            raise _refuse("Image URLs must not carry credentials.", param)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]  # an address literal: nothing to resolve
        except ValueError:
            addresses = []
        try:
            addresses = addresses or await self._resolver(host, port)
        except OSError:
            raise _refuse(f"Cannot resolve the image URL's host {host!r}.", param) from None
        if not addresses or not all(is_public(a) for a in addresses):
            # Never say which address it resolved to: that would map the internal network.
            raise _refuse("Image URLs must point to a public internet address.", param)
        address = addresses[0]
        netloc_host = f"[{address}]" if ":" in address else address
        netloc = f"{netloc_host}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        return pinned, host_header, host

    async def fetch(self, url: str, *, param: str = "image", accept: str = "image/*") -> bytes:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._fetch(url, param, accept)
        except TimeoutError:
            raise _refuse("The image URL did not answer in time.", param) from None

    async def _fetch(self, url: str, param: str, accept: str) -> bytes:
        async with httpx2.AsyncClient(
            transport=self._transport, follow_redirects=False, timeout=self.timeout_seconds
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                pinned, host_header, server_name = await self._vet(url, param)
                request = client.build_request(
                    "GET",
                    pinned,
                    headers={"host": host_header, "accept": accept},
                    extensions={"sni_hostname": server_name},
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx2.HTTPError:
                    raise _refuse("The image URL could not be fetched.", param) from None
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise _refuse(f"The image URL answered HTTP {response.status_code}.", param)
                    return await self._read(response, param)
                finally:
                    await response.aclose()
        raise _refuse("The image URL redirected too many times.", param)

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
            f"The image at the URL is larger than {self.max_bytes} bytes.",
            param=param,
        )
