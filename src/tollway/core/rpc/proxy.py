"""The crypto JSON-RPC proxy's call: check, admit, hold, ask the node, settle the credits.

Money goes through core/admission.py like every paid call: the rate limits (Venice's 100 requests a
minute, the `crypto-rpc` class of core/limits/gate.py, or the key's own limits), then one hold of the
worst case — every item at its full tier — before the node is called (402 first when the balance or
the key's limit cannot pay it), then the settlement of the credits the answer earned × the price of a
credit (TOLLWAY_CRYPTO_RPC_CREDIT_USD), with one usage row: model `crypto-rpc`, provider the network,
units the credits. A node that is down, too slow, or answers anything but JSON-RPC releases the hold
(nothing charged) and is a 502.

The node's URL may carry the operator's provider key: no error, log line or header ever names it,
only the network's slug.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx2
import orjson

from tollway.base.config import ModelConfig, PricingConfig, RouteConfig
from tollway.core import admission
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.limits.gate import RateGate
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import COST_HEADER, nano_to_usd, rpc_cost, usd_8
from tollway.core.rpc import methods
from tollway.errors import ErrorCode, TollwayError

log = logging.getLogger("tollway.rpc")
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # the largest node answer relayed (and kept for an Idempotency-Key replay)
NETWORKS_ROUTE = "GET /api/v1/crypto/rpc/networks"
# What admission and the rate gate see: not a catalog model, but a row of the usage table and a rate
# class. `type` only picks the plan's row (core/limits/gate.py): the plans set text and image limits,
# and an RPC call is neither, so Venice's 100 RPM of the `crypto-rpc` class applies. `private`: a key's
# modelPrivacy (core/catalog/privacy.py) is about which models see a caller's prompts, not about this
# proxy, which no model sees (as for the augment routes, core/augment.py).
RPC_MODEL = CatalogModel(
    ModelConfig(
        id="crypto-rpc",
        name="Crypto JSON-RPC proxy",
        type="moderation",
        routes=[RouteConfig(provider="crypto-rpc", model="json-rpc")],
        pricing=PricingConfig(),
        rate_class="crypto-rpc",
    ),
    Decimal(1),
    private=True,
)


@dataclass(frozen=True, slots=True)
class RpcAnswer:
    """The node's answer as it sent it (bytes), and the headers that say what it cost."""

    body: bytes
    headers: dict[str, str]


def unsupported(network: str) -> TollwayError:
    """Venice's 400 for a network it does not serve, pointing at the list of those it does."""
    return TollwayError(
        ErrorCode.VALIDATION,
        f"Unsupported network {network[:64]!r}: {NETWORKS_ROUTE} lists the networks served here.",
        param="network",
    )


def venice_429(exc: TollwayError) -> None:
    """Venice's 429 for this route: which cap tripped in `customMessage`, and its `X-RateLimit-*` headers
    (the per-minute cap, what is left of it, and when it resets as a Unix time) beside OpenAI's."""
    exc.extra.setdefault("customMessage", exc.message)
    given = exc.headers
    if "x-ratelimit-limit-requests" in given:
        exc.headers["x-ratelimit-limit"] = given["x-ratelimit-limit-requests"]
        exc.headers["x-ratelimit-remaining"] = given.get("x-ratelimit-remaining-requests", "0")
    if given.get("retry-after", "").isdigit():
        exc.headers["x-ratelimit-reset"] = str(int(time.time()) + int(given["retry-after"]))


class NodeFailed(Exception):
    """The node did not answer JSON-RPC; the message names the network, never the URL."""


class RpcProxy:
    def __init__(
        self,
        ledger: Ledger,
        rate_gate: RateGate | None,
        networks: dict[str, str],
        *,
        credit_nano: int,
        timeout_seconds: float,
    ) -> None:
        self.ledger = ledger
        self.rate_gate = rate_gate
        self._networks = networks
        self.credit_nano = credit_nano
        self._timeout = timeout_seconds
        self._client: httpx2.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def node(self, network: str) -> str:
        url = self._networks.get(network)
        if url is None:
            raise unsupported(network)
        return url

    async def forward(self, caller: Caller, request_id: str, network: str, body: Any) -> RpcAnswer:
        """One call or batch, start to end: 400s first, 402 before the node, 502 with nothing charged."""
        url = self.node(network)
        calls = methods.check(body, network)
        hold = await self._admit(caller, request_id, calls)
        async with hold:  # anything escaping releases it: nothing charged
            try:
                raw, answer = await self._ask(url, network, calls)
            except TollwayError as exc:  # the 502: its usage row names the network that failed
                await hold.release(exc.status, provider=network)
                raise
            credits = methods.credits(calls, answer)
            cost = await hold.settle(rpc_cost(credits, self.credit_nano), provider=network, units=credits)
        headers = {
            "x-venice-rpc-credits": str(credits),
            "x-venice-rpc-cost-usd": usd_8(cost),
            COST_HEADER: nano_to_usd(cost),
            "x-tollway-cost-nano": str(cost),
            **hold.rate.headers,
        }
        if hold.balance_before_nano is not None:  # only what this key may see (admission.shown_balance)
            headers["x-venice-balance-usd"] = nano_to_usd(hold.balance_before_nano)
        return RpcAnswer(raw, headers)

    async def _admit(self, caller: Caller, request_id: str, calls: methods.Calls) -> admission.Hold:
        try:
            return await admission.admit(
                self.ledger,
                self.rate_gate,
                caller,
                request_id=request_id,
                model=RPC_MODEL,
                endpoint="crypto/rpc",
                estimate_nano=rpc_cost(calls.worst_case, self.credit_nano),
            )
        except TollwayError as exc:
            if exc.code == ErrorCode.RATE_LIMITED:
                venice_429(exc)
            raise

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            # Operator-configured node URLs (not a client's): no redirects followed, a bounded wait.
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
                follow_redirects=False,
                limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._client

    async def _ask(self, url: str, network: str, calls: methods.Calls) -> tuple[bytes, Any]:
        try:
            raw = await self._post(url, orjson.dumps(calls.body()))
        except NodeFailed as exc:
            log.warning("crypto rpc node failed", extra={"network": network, "reason": str(exc)})
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR, f"The {network} node failed: {exc}. Nothing was charged."
            ) from None
        try:
            answer = json.loads(raw)  # Python's parser: a node's integers may exceed 64 bits
        except ValueError:
            answer = None
        items = answer if isinstance(answer, list) else [answer]
        if not items or not all(isinstance(item, dict) for item in items):
            log.warning("crypto rpc node answered no JSON-RPC", extra={"network": network})
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR,
                f"The {network} node answered something that is not JSON-RPC. Nothing was charged.",
            )
        return raw, answer

    async def _post(self, url: str, payload: bytes) -> bytes:
        headers = {"content-type": "application/json", "accept": "application/json"}
        try:
            async with self._http().stream("POST", url, content=payload, headers=headers) as response:
                if response.status_code != 200:
                    raise NodeFailed(f"it answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise NodeFailed(f"its answer is larger than {MAX_ANSWER_BYTES} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx2.TimeoutException:
            raise NodeFailed(f"it did not answer within {self._timeout:g} s") from None
        except httpx2.HTTPError as exc:
            # httpx's messages can hold the URL: only the kind of failure is told.
            raise NodeFailed(f"it could not be reached ({type(exc).__name__})") from None
