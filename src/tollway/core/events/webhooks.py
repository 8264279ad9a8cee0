"""Signed webhooks: the signature scheme, the SSRF rules on the URL, and one delivery.

Signature: `Tollway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, with the
event id in `Tollway-Event-Id`. A receiver recomputes v1 over the raw body, compares in constant time
and refuses an old t (replays). `verify` is that check.

The URL is vetted like a client-given image URL (base/fetch.py's rules): http(s) only, no credentials,
every address the host resolves to public — unless the host is on the operator's allow-list
(TOLLWAY_WEBHOOK_ALLOW_HOSTS) —, checked again at every delivery, and the connection goes to the
address checked (no DNS rebinding). Redirects are not followed: a 3xx is a failed delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import httpx2

from tollway.base.fetch import is_public
from tollway.errors import ErrorCode, TollwayError

SIGNATURE_HEADER = "Tollway-Signature"
EVENT_ID_HEADER = "Tollway-Event-Id"


class DeliveryError(Exception):
    """A delivery that did not happen (the message says why, with no secret): try again later."""


class Undeliverable(DeliveryError):
    """A delivery that can never happen (its receiver is gone): give up at once."""


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: the v1 HMAC matches and t is within the tolerance of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_seconds:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _refuse(message: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param="url")


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class Poster:
    """POSTs to webhook URLs under the SSRF rules; `allow_hosts` are exempt from the public-address rule."""

    def __init__(self, allow_hosts: str = "", timeout_seconds: float = 5.0) -> None:
        self.allow_hosts = {h.strip().lower().strip("[]") for h in allow_hosts.split(",") if h.strip()}
        self.timeout_seconds = timeout_seconds
        self._client = httpx2.AsyncClient(follow_redirects=False, timeout=timeout_seconds)

    async def vet(self, url: str) -> tuple[str, str, str]:
        """(URL to connect to, Host header, TLS server name), or a 400 naming `url`."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            raise _refuse("The webhook URL is malformed: use http(s)://host[:port]/path.") from None
        if parts.scheme not in ("http", "https") or not host or port == 0:
            raise _refuse("The webhook URL must start with http:// or https:// and name a host.")
        if parts.username or parts.password:
            raise _refuse("The webhook URL must not carry credentials.")
        port = port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await asyncio.wait_for(_resolve(host, port), self.timeout_seconds)
            except (OSError, ValueError, UnicodeError, TimeoutError):
                raise _refuse(f"Cannot resolve the webhook URL's host {host!r}.") from None
        allowed = host.lower() in self.allow_hosts
        if not addresses or not (allowed or all(is_public(a) for a in addresses)):
            # Never say which address it resolved to: that would map the internal network.
            raise _refuse("The webhook URL must point to a public internet address.")
        address = addresses[0]
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            host_header = f"{host_header}:{parts.port}"
        return pinned, host_header, host

    async def post(self, url: str, body: bytes, event_id: str, secret: bytes) -> None:
        """One signed delivery; DeliveryError unless the receiver answered 2xx."""
        try:
            pinned, host_header, server_name = await self.vet(url)
        except TollwayError as exc:
            raise DeliveryError(exc.message) from None
        headers = {
            "host": host_header,
            "content-type": "application/json",
            "user-agent": "Tollway-Webhooks/1",
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: sign(secret, body),
        }
        try:
            request = self._client.build_request(
                "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": server_name}
            )
            # The whole exchange is bounded, and the answer's body is never read: a receiver (an
            # account's URL) can neither hold the publisher nor make it buffer a large body.
            async with asyncio.timeout(self.timeout_seconds):
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except (httpx2.HTTPError, ValueError, TimeoutError) as exc:
            raise DeliveryError(f"webhook unreachable ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webhook answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
