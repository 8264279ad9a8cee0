"""Venice's augment operations (issue 23: `augment/text-parser`, `augment/search`, `augment/scrape`) as
paid calls, through the one charge path (core/admission.py), the way the crypto RPC proxy charges.

Each is a flat price per call, an operator setting (TOLLWAY_AUGMENT_TEXT_PARSER_USD, _SEARCH_USD,
_SCRAPE_USD; by default Venice's document's least price, 0.001 USD), not a catalog price: no markup.
`Metered.run` holds that price before the work (402 first when the balance or the key's limit cannot
pay it, so nothing is parsed, searched or fetched), does the work, then settles the price with one usage
row: model `augment-<operation>`, provider what did the work, units 1 (the call). Work that fails — a
refused or oversized page, a search backend that is down, a document that cannot be read — releases
the hold with a row of the failure and its status: nothing charged.

A price of 0 keeps an operation free, but still admitted and recorded like a free catalog model: a
hold of 0 and a usage row at cost 0. Rate limits are not applied (the routes had none before; the
failed-request limit still counts their errors, api/middleware.py). Nothing of a document, query or
page is stored or logged: the row holds counts only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeVar

from tollway.base.config import ModelConfig, PricingConfig, RouteConfig
from tollway.core import admission
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.money.ledger import Ledger
from tollway.core.money.prices import COST_HEADER, nano_to_usd
from tollway.errors import TollwayError

Operation = Literal["text-parser", "search", "scrape"]
T = TypeVar("T")


def _model(operation: Operation, name: str) -> CatalogModel:
    # Not a catalog model: a row of the usage table. `type` only matters to the rate gate, which these
    # calls do not pass; the default tier keeps check_tier out of the way. `private`: a key's modelPrivacy
    # (core/catalog/privacy.py) restricts which models it may call, and these routes were never subject
    # to it: charging them must not change which keys may call them.
    return CatalogModel(
        ModelConfig(
            id=f"augment-{operation}",
            name=name,
            type="moderation",
            routes=[RouteConfig(provider="augment", model=operation)],
            pricing=PricingConfig(),
        ),
        Decimal(1),
        private=True,
    )


MODELS: dict[Operation, CatalogModel] = {
    "text-parser": _model("text-parser", "Venice augment: text out of a document"),
    "search": _model("search", "Venice augment: web search"),
    "scrape": _model("scrape", "Venice augment: one web page as text"),
}


@dataclass(frozen=True, slots=True)
class Metered:
    """The augment operations' prices (whole nano-USD a call) and the ledger that charges them."""

    ledger: Ledger
    prices: dict[Operation, int]

    async def run(
        self,
        caller: Caller,
        request_id: str,
        operation: Operation,
        provider: str,
        work: Callable[[], Awaitable[T]],
    ) -> tuple[T, dict[str, str]]:
        """Hold the price, do `work`, settle it: (what the work returned, the headers of the cost)."""
        price = self.prices[operation]
        hold = await admission.admit(
            self.ledger,
            None,  # no rate gate: see the module's docstring
            caller,
            request_id=request_id,
            model=MODELS[operation],
            endpoint=f"augment/{operation}",
            estimate_nano=price,
        )
        async with hold:  # anything else escaping frees the hold without a row: nothing charged
            try:
                result = await work()
            except TollwayError as exc:
                # A refusal of the client's input (400, 413) is told apart from a backend's failure.
                outcome = "refused" if exc.status < 500 else "upstream_error"
                await hold.release(exc.status, outcome=outcome, provider=provider)
                raise
            cost = await hold.settle(price, provider=provider, units=1)
        headers = {COST_HEADER: nano_to_usd(cost), "x-tollway-cost-nano": str(cost)}
        if hold.balance_before_nano is not None:  # only what this key may see (admission.shown_balance)
            headers["x-venice-balance-usd"] = nano_to_usd(hold.balance_before_nano)
        return result, headers
