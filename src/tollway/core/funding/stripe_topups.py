"""Card top-ups by Stripe Checkout (issue 25): a Checkout Session per top-up, credited by its webhook.

`create` asks Stripe (the official `stripe` library, sync, in a thread) for a Checkout Session of a
whole-cents amount within the operator's bounds and records it in `stripe_topups` with the amount WE
chose. Our top-up id (`tu_…`) is the session's idempotency key and its metadata, on the session and on
its PaymentIntent (so a charge's refund names the top-up even before the completion arrives).

`handle` takes a webhook delivery: the `Stripe-Signature` is checked by `stripe.Webhook.construct_event`
with the endpoint secret and the operator's tolerance (a stale timestamp is refused). Then ONE
transaction applies the event: its id goes into `stripe_events` (primary key: each event applies once
however often, and however concurrently, it is delivered), and
- `checkout.session.completed` / `checkout.session.async_payment_succeeded` with payment_status `paid`
  claims the top-up (`open → paid`, a conditional UPDATE: one credit per session whatever the event id)
  and credits the amount we recorded, ledger reference `stripe:<session id>`. A session whose
  amount_total or currency differs from our record is not credited, and is flagged.
- `charge.refunded` debits what the charge's cumulative `amount_refunded` adds to what we counted
  (compare-and-set on `refunded_cents`), reference `stripe:<event id>`, kind `adjust`.
- `charge.dispute.*`: a dispute's lifecycle (stripe_disputes.py): its amount debited once (reference
  `stripe:<dispute id>`), credited back once if it is won, whatever the order of its events.
A refund or dispute debit may take the available balance below zero (charges.fund); the account's
keys then get 402. Both are flagged for the operator.
A flag is a `stripe_events` row with `flagged` and an `admin_audit` entry (actor `stripe`), written in the
same transaction. A refund or dispute that names no top-up we know (no metadata, PaymentIntent not yet
learned from a completion) is refused with 409 and nothing stored: Stripe delivers it again later.
No secret, and nothing of the card, is stored or logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.funding import stripe_disputes
from tollway.core.money import charges
from tollway.core.money.prices import nano_to_usd
from tollway.errors import ErrorCode, TollwayError
from tollway.store.funding_tables import stripe_events, stripe_topups
from tollway.store.tables import admin_audit
from tollway.store.transactor import Transactor

log = logging.getLogger("tollway.funding.stripe")
NANO_PER_CENT = 10_000_000
MAX_ID = 100  # a Stripe id longer than this is not one (ledger references hold 120 characters)
COMPLETED = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


@dataclass(frozen=True, slots=True)
class TopUp:
    id: str
    session_id: str
    url: str
    amount_nano: int


@dataclass(frozen=True, slots=True)
class Applied:
    event_id: str
    outcome: str  # credited, debited, already_credited, amount_mismatch, unknown_session, ignored, duplicate
    amount_nano: int = 0


class NotYetKnown(Exception):
    """A refund or dispute for a top-up this server cannot name yet: answer non-2xx, Stripe redelivers."""


def reference(stripe_id: str) -> str:
    return f"stripe:{stripe_id}"


class StripeTopups:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None,
        min_nano: int,
        max_nano: int,
        success_url: str,
        cancel_url: str | None,
        tolerance_seconds: int = 300,
    ) -> None:
        import stripe  # here, not at the top: it loads aiohttp, ~0.5 s off every start without Stripe

        stripe.enable_telemetry = False  # the library would write an id under ~/.config/stripe
        self._stripe = stripe
        self._tx = Transactor(engine)
        self._client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else {}, max_network_retries=2
        )
        self._webhook_secret = webhook_secret
        self.min_nano, self.max_nano = min_nano, max_nano
        self._success_url, self._cancel_url = success_url, cancel_url
        self._tolerance = tolerance_seconds

    async def aclose(self) -> None:
        await self._tx.aclose()

    async def create(self, account_id: str, amount_nano: int) -> TopUp:
        """A Checkout Session for `amount_nano` (whole cents, within bounds), recorded as open."""
        if amount_nano % NANO_PER_CENT:
            raise TollwayError(ErrorCode.VALIDATION, "amount_usd must be whole cents.", param="amount_usd")
        if not self.min_nano <= amount_nano <= self.max_nano:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"A card top-up is between ${nano_to_usd(self.min_nano)} and ${nano_to_usd(self.max_nano)}.",
                param="amount_usd",
            )
        topup_id = f"tu_{secrets.token_hex(12)}"
        cents = amount_nano // NANO_PER_CENT
        metadata = {"tollway_topup": topup_id, "tollway_account": account_id, "amount_cents": str(cents)}
        params: dict[str, Any] = {
            "mode": "payment",
            "success_url": self._success_url,
            "client_reference_id": account_id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": cents,
                        "product_data": {"name": "Tollway balance top-up"},
                    },
                    "quantity": 1,
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        if self._cancel_url:
            params["cancel_url"] = self._cancel_url
        try:
            session = await asyncio.to_thread(
                self._client.v1.checkout.sessions.create,
                params,  # type: ignore[arg-type]  # the library's TypedDict of these very keys
                {"idempotency_key": topup_id},
            )
        except self._stripe.StripeError as exc:
            # The library's message may quote part of the key: log the kind and status, say neither.
            log.warning("stripe checkout session failed: %s (http %s)", type(exc).__name__, exc.http_status)
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR, "The card processor did not create a checkout session. Retry."
            ) from None
        if not session.id or len(session.id) > MAX_ID or not session.url:
            raise TollwayError(
                ErrorCode.UPSTREAM_ERROR, "The card processor answered without a checkout URL."
            )
        row = {
            "id": topup_id,
            "session_id": session.id,
            "account_id": account_id,
            "amount_nano": amount_nano,
            "amount_cents": cents,
            "status": "open",
            "refunded_cents": 0,
            "created_at": utcnow(),
        }
        await self._tx.run(lambda conn: conn.execute(insert(stripe_topups).values(row)))
        return TopUp(topup_id, session.id, session.url, amount_nano)

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if Stripe signed this very payload within the tolerance; else 400."""
        if not signature:
            raise TollwayError(
                ErrorCode.VALIDATION, "Missing Stripe-Signature header.", param="Stripe-Signature"
            )
        import stripe

        try:
            stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=self._tolerance
            )
            event = json.loads(payload)
        except stripe.SignatureVerificationError:
            raise TollwayError(
                ErrorCode.VALIDATION,
                "The Stripe-Signature does not match this payload, or its timestamp is too old.",
                param="Stripe-Signature",
            ) from None
        except ValueError:
            raise TollwayError(ErrorCode.VALIDATION, "The webhook body is not a Stripe event.") from None
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not 0 < len(event["id"]) <= MAX_ID
            or not isinstance(event.get("type"), str)
            or not isinstance((event.get("data") or {}).get("object"), dict)
        ):
            raise TollwayError(ErrorCode.VALIDATION, "The webhook body is not a Stripe event.")
        return event

    async def handle(self, payload: bytes, signature: str | None) -> Applied:
        event = self.verify(payload, signature)
        try:
            return await self._tx.run(lambda conn: _apply(conn, event))
        except IntegrityError:
            return Applied(event["id"], "duplicate")  # stripe_events' primary key: applied before
        except NotYetKnown:
            raise TollwayError(
                ErrorCode.CONFLICT,
                "This refund or dispute names no top-up known yet; it was not applied. Stripe retries it.",
            ) from None


def _apply(conn: Connection, event: dict[str, Any]) -> Applied:
    kind, obj = event["type"], event["data"]["object"]
    if kind in COMPLETED:
        return _completed(conn, event, obj)
    if kind == "charge.refunded":
        return _refunded(conn, event, obj)
    if stripe_disputes.handles(kind):
        return stripe_disputes.apply(conn, event, obj, _topup_of(conn, obj), _record)
    return _record(conn, event, None, "ignored")


def _completed(conn: Connection, event: dict[str, Any], session: dict[str, Any]) -> Applied:
    row = conn.execute(
        select(stripe_topups).where(stripe_topups.c.session_id == str(session.get("id")))
    ).first()
    if row is None:
        return _record(conn, event, None, "unknown_session", flag=True)
    if session.get("payment_status") != "paid":
        return _record(conn, event, row, "unpaid")  # an async payment: its success event credits
    metadata = session.get("metadata") or {}
    if (
        session.get("amount_total") != row.amount_cents
        or str(session.get("currency", "")).lower() != "usd"
        or metadata.get("tollway_topup", row.id) != row.id
    ):
        return _record(conn, event, row, "amount_mismatch", flag=True)
    intent = session.get("payment_intent")
    claimed = conn.execute(
        update(stripe_topups)
        .where(stripe_topups.c.id == row.id, stripe_topups.c.status == "open")
        .values(
            status="paid",
            credited_at=utcnow(),
            payment_intent=intent if isinstance(intent, str) and len(intent) <= MAX_ID else None,
        )
    )
    if claimed.rowcount != 1:
        return _record(conn, event, row, "already_credited")
    if not charges.fund(conn, row.account_id, int(row.amount_nano), "credit", reference(row.session_id)):
        raise TollwayError(ErrorCode.VALIDATION, "This top-up would pass the most an account may hold.")
    return _record(conn, event, row, "credited", int(row.amount_nano))


def _topup_of(conn: Connection, obj: dict[str, Any]) -> Any:
    """The top-up a charge or dispute belongs to: by our metadata, else by its PaymentIntent."""
    topup_id = (obj.get("metadata") or {}).get("tollway_topup")
    if isinstance(topup_id, str):
        row = conn.execute(select(stripe_topups).where(stripe_topups.c.id == topup_id)).first()
        if row is not None:
            return row
    intent = obj.get("payment_intent")
    if isinstance(intent, str) and intent:
        row = conn.execute(select(stripe_topups).where(stripe_topups.c.payment_intent == intent)).first()
        if row is not None:
            return row
    raise NotYetKnown()


def _refunded(conn: Connection, event: dict[str, Any], charge: dict[str, Any]) -> Applied:
    row = _topup_of(conn, charge)
    total = charge.get("amount_refunded")
    if not isinstance(total, int) or total <= row.refunded_cents:
        return _record(conn, event, row, "refund_counted")  # an older or repeated total
    counted = conn.execute(
        update(stripe_topups)
        .where(stripe_topups.c.id == row.id, stripe_topups.c.refunded_cents == row.refunded_cents)
        .values(refunded_cents=total)
    )
    if counted.rowcount != 1:  # a concurrent refund event counted first: let Stripe deliver this again
        raise NotYetKnown()
    return _debit(conn, event, row, (total - row.refunded_cents) * NANO_PER_CENT, "refunded")


def _debit(conn: Connection, event: dict[str, Any], row: Any, amount_nano: int, outcome: str) -> Applied:
    if not charges.fund(conn, row.account_id, -amount_nano, "adjust", reference(event["id"])):
        raise TollwayError(ErrorCode.NOT_FOUND, "The top-up's account no longer exists.")
    return _record(conn, event, row, outcome, -amount_nano, flag=True)


def _record(
    conn: Connection,
    event: dict[str, Any],
    row: Any,
    outcome: str,
    amount_nano: int = 0,
    *,
    flag: bool = False,
) -> Applied:
    """The event's row (its primary key refuses a second application), and the operator's flag."""
    now = utcnow()
    account_id = row.account_id if row is not None else None
    conn.execute(
        insert(stripe_events).values(
            id=event["id"],
            type=event["type"][:64],
            topup_id=row.id if row is not None else None,
            account_id=account_id,
            amount_nano=amount_nano,
            outcome=outcome,
            flagged=flag,
            received_at=now,
        )
    )
    if flag:
        conn.execute(
            insert(admin_audit).values(
                actor="stripe",
                action=f"stripe.{outcome}",
                account_id=account_id,
                target=(row.session_id if row is not None else str(event["data"]["object"].get("id")))[:80],
                details={
                    "event": event["id"],
                    "type": event["type"][:64],
                    "amount_usd": nano_to_usd(amount_nano),
                },
                client_ip=None,
                created_at=now,
            )
        )
    return Applied(event["id"], outcome, amount_nano)
