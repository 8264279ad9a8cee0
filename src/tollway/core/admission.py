"""THE charge path: every paid request is admitted here and ends here (DESIGN §3, steps 5–10).

`admit()` runs, in this order: the operator key's refusal, the key's checks on the model (`check_tier`: its
`modelPrivacy`, then the tier/age check), the rate
limits (a refused request holds nothing), then one atomic hold of the worst case in the ledger (402
before any upstream call). It returns a `Hold`, which ends exactly once:

- `hold.settle(cost, ...)` charges the actual cost (the ledger caps it at the hold), frees the rest and
  writes the usage row, in one transaction;
- `hold.release(status, ...)` charges nothing and writes the row of the failure;
- `async with hold:` ends it if an exception escapes first: a TollwayError releases it with its status
  and a row; anything else (a cancellation, a crash) frees it without one.

A job's hold outlives its request: `Hold.resume()` rebuilds it from the job's row, to end it when the
job does (core/jobs/runner.py).

Chat, embeddings, every media route and every job go through this module, and so must batches,
Responses and whatever charges next. Do not write a second money path: a route that charges without a
`Hold` is a bug (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from tollway.base.clock import as_utc, utcnow
from tollway.core.caller import Caller
from tollway.core.catalog import privacy
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.limits.gate import RateGate, Ticket
from tollway.core.money.ledger import Ledger, Reservation
from tollway.core.money.prices import TokenUsage
from tollway.errors import ErrorCode, TollwayError


def check_tier(caller: Caller, model: CatalogModel) -> None:
    """The key may call the model: its modelPrivacy allows the model's privacy tier (403
    MODEL_PRIVACY_FORBIDDEN), and an uncensored model needs an uncensored key on an age-verified account."""
    privacy.check(caller, model)
    if model.config.tier != "uncensored":
        return
    if caller.content_tier != "uncensored":
        raise TollwayError(ErrorCode.CONTENT_TIER_FORBIDDEN, param="model")
    if not caller.age_verified:
        raise TollwayError(ErrorCode.AGE_VERIFICATION_REQUIRED, param="model")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One row of the `usage` table: metadata only, never content. The ledger adds `cost_nano`."""

    request_id: str
    account_id: str
    key_id: str | None
    key_label: str | None
    model: str
    endpoint: str
    provider: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    units: int  # what a non-token price counted: images, characters, seconds
    usage_source: str  # provider | estimated | none
    outcome: str
    status_code: int
    latency_ms: int
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies every value, once per call on the hot path.
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclass(slots=True)
class Hold:
    """Money held for one request (or job), and who and what it is for, until it ends."""

    ledger: Ledger
    account_id: str
    request_id: str  # the ledger's reference: the request id, or the job id
    key_id: str | None
    key_label: str | None
    model_id: str
    endpoint: str
    began: datetime  # the usage row's latency counts from here
    # What this caller may see of the money before this request (the balance headers): None for a key
    # that may not see the account's wholesale balance (see `shown_balance`).
    balance_before_nano: int | None = None
    rate: Ticket = field(default_factory=lambda: Ticket(None))  # the limiter lease, finished once
    held_nano: int = 0  # what the ledger holds for it (less than asked when admit's least_nano let it shrink)
    ended: bool = False
    # Runs in the settlement's transaction (a batch line's record: core/batches/); None for most calls.
    settle_also: Callable[[Connection], None] | None = None

    @classmethod
    def resume(
        cls,
        ledger: Ledger,
        *,
        account_id: str,
        request_id: str,
        key_id: str | None,
        key_label: str | None,
        model_id: str,
        endpoint: str,
        began: datetime,
    ) -> Hold:
        """A hold taken earlier (a job's), to be ended now."""
        return cls(ledger, account_id, request_id, key_id, key_label, model_id, endpoint, began)

    def row(
        self,
        *,
        provider: str | None,
        usage: TokenUsage,
        units: int,
        source: str,
        outcome: str,
        status: int,
    ) -> UsageRow:
        now = utcnow()
        return UsageRow(
            request_id=self.request_id,
            account_id=self.account_id,
            key_id=self.key_id,
            key_label=self.key_label,
            model=self.model_id,
            endpoint=self.endpoint[:40],
            provider=provider,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            units=units,
            usage_source=source,
            outcome=outcome,
            status_code=status,
            latency_ms=int((now - as_utc(self.began)).total_seconds() * 1000),
            created_at=now,
        )

    def _end(self) -> None:
        if self.ended:
            raise RuntimeError(f"the hold of {self.request_id} has already ended")
        self.ended = True

    async def settle(
        self,
        cost_nano: int,
        *,
        provider: str,
        usage: TokenUsage | None = None,
        units: int = 0,
        source: str = "provider",
        outcome: str = "completed",
        status: int = 200,
    ) -> int:
        """Charge `cost_nano` (at most the hold), free the rest, write the row; returns the charge."""
        self._end()
        usage = usage or TokenUsage()
        row = self.row(
            provider=provider, usage=usage, units=units, source=source, outcome=outcome, status=status
        )
        try:
            return await self.ledger.settle(
                self.account_id, self.request_id, cost_nano, row.as_dict(), also=self.settle_also
            )
        except Exception:
            if self.settle_also is not None:
                # `settle_also` refused the settlement (a batch line another runner recorded first):
                # it rolled back, so the hold is still held; free it now rather than at its lease's end.
                await self.ledger.release(self.request_id)
            raise
        finally:
            await self.rate.finish(usage.prompt_tokens + usage.completion_tokens)  # the actual tokens

    async def release(
        self, status: int, *, outcome: str = "upstream_error", provider: str | None = None
    ) -> None:
        """A failure before any result: charge nothing, free the hold, record the outcome."""
        self._end()
        row = self.row(
            provider=provider, usage=TokenUsage(), units=0, source="none", outcome=outcome, status=status
        )
        await self.rate.finish(0)
        await self.ledger.release(self.request_id, row.as_dict())

    async def abandon(self) -> None:
        """Cancelled or crashed before it ended: free the limiter slot and the hold, with no row."""
        self._end()
        self.rate.finish_soon()
        await self.ledger.release(self.request_id)

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or self.ended:
            return
        if isinstance(exc, TollwayError):
            await self.release(exc.status)
        else:
            await self.abandon()


async def admit(
    ledger: Ledger,
    rate_gate: RateGate | None,
    caller: Caller,
    *,
    request_id: str,
    model: CatalogModel,
    endpoint: str,
    estimate_nano: int,
    estimate_tokens: int = 0,
    began: datetime | None = None,
    ttl: timedelta | None = None,
    also: Callable[[Connection], None] | None = None,
    least_nano: int | None = None,
    settle_also: Callable[[Connection], None] | None = None,
) -> Hold:
    """Refusals first, then the rate limits, then the hold (402 before any upstream call).

    `ttl` overrides the reservation's lifetime (a job's is days); `also(conn)` runs in the hold's
    transaction (a job's row is inserted with its hold, or neither is); with `least_nano` the hold
    may be smaller than the estimate, down to that (Ledger.reserve), and `Hold.held_nano` says how much.
    `settle_also(conn)` runs in the settlement's transaction (a batch line: it is metered once)."""
    if caller.account_id is None:
        raise TollwayError(
            ErrorCode.UNAUTHORIZED, "The operator key manages accounts; mint a key to call models."
        )
    check_tier(caller, model)
    # Rate limits before money: a refused request holds nothing (DESIGN §3 step 6).
    rate = Ticket(None)
    if rate_gate is not None:
        rate = await rate_gate.admit(caller, model, estimate_tokens)
    try:
        reservation = await ledger.reserve(
            caller.account_id,
            request_id,
            estimate_nano,
            caller.key_limit,
            key_id=caller.key_id,
            ttl=ttl,
            also=also,
            least_nano=least_nano,
            carve=settle_also is None,
        )
    except BaseException:
        rate.finish_soon()  # free the in-flight slot and the token estimate
        raise
    return Hold(
        ledger,
        caller.account_id,
        request_id,
        caller.key_id,
        caller.label,
        model.id,
        endpoint,
        began or utcnow(),
        shown_balance(caller, reservation),
        rate,
        reservation.amount_nano,
        settle_also=settle_also,
    )


def shown_balance(caller: Caller, reservation: Reservation) -> int | None:
    """A reseller's customer key must not see the wholesale account's balance (issue 19 item 9).

    A key with a consumption limit sees what it can still spend (never more than the account has);
    an admin key sees the account's available balance; any other key sees nothing."""
    if reservation.key_available_before_nano is not None:
        return min(reservation.key_available_before_nano, reservation.available_before_nano)
    return reservation.available_before_nano if caller.scope == "admin" else None
