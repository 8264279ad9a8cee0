"""x402 top-ups (issue 25, Venice's `/x402/top-up`, `/x402/balance/…`, `/x402/transactions/…`).

A top-up is an x402 v2 `exact` payment: an EIP-3009 authorization for this server's token and
recipient, checked off chain first (x402_checks.py). Then, exactly once per (token, payer, nonce):

1. claim: INSERT the `x402_payments` row (status pending). Of concurrent submissions of one payment
   the unique constraint lets one through; the others are told it is in progress, or already used.
2. settle (chain.py): a dry run (`eth_call`, so a refused authorization costs no gas); the signed
   transaction's hash is recorded BEFORE it is sent; then the receipt is awaited.
3. credit: `Ledger.credit` with reference `x402:<payment id>` (the one credit path; unique per
   account, kind and reference, so a repeated credit changes nothing), then the row is `settled`.

Crash safety: a payment left pending (its process died) is finished by the finisher
(x402_finisher.py, on start-up and periodically) or by the client resubmitting it, once the claim is
stale; the taker-over (a conditional UPDATE of claimed_at: one wins) looks the recorded
transaction up: mined → credit; reverted, or never mined and the window closed → the row is deleted
(nothing moved); never sent (no hash) → settled afresh. A payment whose settlement failed is deleted
so the authorization can be retried, e.g. after funding the wallet.

The wallet (the authorization's `from`) is the account, as in Venice: a wallet the operator bound to an
account (`POST admin/accounts/{id}/wallets`) tops that account up; an unknown wallet gets an account
of its own, created and bound on its first settled top-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from x402.schemas import PaymentRequired, PaymentRequirements

from tollway.base.clock import as_utc, utcnow
from tollway.base.ids import new_id
from tollway.core.access.web3 import Wallets
from tollway.core.funding.chain import Chain, ChainError, Reverted
from tollway.core.funding.x402_checks import (
    Authorization,
    Terms,
    X402Refusal,
    check_payment,
    decode_header,
    invalid,
)
from tollway.core.funding.x402_finisher import UNITS_TO_NANO, Finisher, reference
from tollway.core.money.ledger import CeilingExceeded, Ledger
from tollway.settings import Settings
from tollway.store.funding_tables import x402_payments
from tollway.store.tables import accounts, ledger, wallet_bindings

STALE_MARGIN_SECONDS = 5  # a claim is stale 2 × receipt timeout + this after it was made
KINDS = {"credit": "TOP_UP", "settle": "CHARGE", "refund": "REFUND", "adjust": "ADJUSTMENT"}


def usd(nano: int) -> float:
    return float(Decimal(nano) / 10**9)


@dataclass(frozen=True, slots=True)
class TopUp:
    payment_id: str
    wallet: str
    amount_nano: int
    balance_nano: int
    tx_hash: str
    network: str


def _in_progress() -> X402Refusal:
    return X402Refusal(
        409,
        "X402_PAYMENT_IN_PROGRESS",
        "This payment is being settled; resubmit it in a moment.",
        "payment_in_progress",
    )


def _pending() -> X402Refusal:
    return X402Refusal(
        502,
        "X402_SETTLEMENT_PENDING",
        "The settlement was sent but is not confirmed yet; resubmit the same payment to finish it.",
        "settlement_pending",
    )


def _unavailable() -> X402Refusal:
    return X402Refusal(
        502, "X402_SETTLEMENT_UNAVAILABLE", "The chain could not be reached; retry.", "chain_unavailable"
    )


class X402:
    def __init__(
        self, engine: AsyncEngine, ledger_: Ledger, chain: Chain, terms: Terms, *, receipt_timeout: float
    ) -> None:
        self._engine = engine
        self._ledger = ledger_
        self._chain = chain
        self.terms = terms
        self._receipt_timeout = receipt_timeout
        self._wallets = Wallets(engine)

    async def aclose(self) -> None:
        await self._chain.aclose()

    def finisher(self) -> Finisher:
        stale = timedelta(seconds=2 * self._receipt_timeout + STALE_MARGIN_SECONDS)
        return Finisher(self._engine, self._ledger, self._chain, self.terms.asset, stale, self.account_for)

    def requirements(self, max_timeout_seconds: int) -> PaymentRequired:
        """The 402's one option: at least the minimum top-up, in the token, to pay_to (any amount up to the maximum)."""
        option = PaymentRequirements(
            scheme="exact",
            network=self.terms.network,
            asset=self.terms.asset,
            amount=str(self.terms.min_units),
            pay_to=self.terms.pay_to,
            max_timeout_seconds=max_timeout_seconds,
            extra={"name": self.terms.token_name, "version": self.terms.token_version},
        )
        return PaymentRequired(x402_version=2, accepts=[option])

    async def top_up(self, header: str) -> TopUp:
        auth = check_payment(decode_header(header), self.terms)
        payment_id = new_id("x402")
        claimed_at = utcnow()
        row = {
            "id": payment_id,
            "asset": self.terms.asset,
            "payer": auth.payer,
            "nonce": auth.nonce,
            "amount_units": auth.value,
            "status": "pending",
            "claimed_at": claimed_at,
            "valid_before": min(auth.valid_before, 2**63 - 1),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(x402_payments).values(**row))
        except IntegrityError:
            return await self._resume(auth)
        tx_hash = await self._settle(payment_id, auth)
        return await self._credit(payment_id, auth, tx_hash)

    async def _settle(self, payment_id: str, auth: Authorization) -> str:
        """Send the authorization and await its receipt; the row is deleted when nothing moved."""
        try:
            gas = await self._chain.dry_run(auth)
        except Reverted:
            await self._forget(payment_id)
            raise invalid(
                "The token refuses this authorization (its nonce is used, or the wallet lacks the funds).",
                "settlement_refused",
            ) from None
        except ChainError:
            await self._forget(payment_id)
            raise _unavailable() from None
        async with self._chain.sending:
            try:
                signed = await self._chain.sign(auth, gas)
            except (ChainError, Reverted):
                await self._forget(payment_id)
                raise _unavailable() from None
            await self._record(payment_id, signed.tx_hash)
            try:
                await self._chain.send(signed)
            except (ChainError, Reverted) as exc:
                if isinstance(exc, Reverted) or exc.answered:  # the node refused it: it is not on its way
                    await self._forget(payment_id)
                    raise _unavailable() from None
                raise _pending() from None  # it may have gone out: the recorded hash decides later
        return await self._outcome(payment_id, signed.tx_hash)

    async def _outcome(self, payment_id: str, tx_hash: str) -> str:
        try:
            mined = await self._chain.wait(tx_hash, self._receipt_timeout)
        except (ChainError, Reverted):
            raise _pending() from None
        if mined is None:
            raise _pending()
        if not mined:
            await self._forget(payment_id)
            raise invalid("The settlement transaction reverted; nothing was moved.", "settlement_reverted")
        return tx_hash

    async def _resume(self, auth: Authorization) -> TopUp:
        """A payment already claimed: used, in progress, or left pending by a process that stopped."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(x402_payments).where(
                        x402_payments.c.asset == self.terms.asset,
                        x402_payments.c.payer == auth.payer,
                        x402_payments.c.nonce == auth.nonce,
                    )
                )
            ).first()
        if row is None:
            raise _in_progress()  # it was deleted (failed) between our INSERT and this read: retry
        if row.status == "settled":
            raise invalid("This payment's nonce has already been used.", "nonce_already_used")
        if row.status == "expired":  # the finisher found it never settled before its validBefore
            raise invalid("The authorization expired before its settlement was mined.", "expired")
        stale = as_utc(row.claimed_at) + timedelta(seconds=2 * self._receipt_timeout + STALE_MARGIN_SECONDS)
        now = utcnow()
        if stale > now:
            raise _in_progress()
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                update(x402_payments)
                .where(x402_payments.c.id == row.id, x402_payments.c.claimed_at == row.claimed_at)
                .values(claimed_at=now)
            )
        if taken.rowcount != 1:
            raise _in_progress()
        if row.tx_hash is None:  # its process stopped before sending: settle afresh
            return await self._credit(row.id, auth, await self._settle(row.id, auth))
        try:
            mined = await self._chain.receipt(row.tx_hash)
        except (ChainError, Reverted):
            raise _unavailable() from None
        if mined is None and auth.valid_before < now.timestamp():
            await self._forget(row.id)
            raise invalid("The authorization expired before its settlement was mined.", "expired")
        if mined is None:
            raise _pending()
        if not mined:
            await self._forget(row.id)
            raise invalid("The settlement transaction reverted; nothing was moved.", "settlement_reverted")
        return await self._credit(row.id, auth, row.tx_hash)

    async def _credit(self, payment_id: str, auth: Authorization, tx_hash: str) -> TopUp:
        account_id = await self.account_for(auth.payer, create=True)
        assert account_id is not None
        amount = auth.value * UNITS_TO_NANO
        try:
            await self._ledger.credit(account_id, amount, reference=reference(payment_id))
        except CeilingExceeded:  # the money moved on chain: the row stays pending for the operator
            raise X402Refusal(
                400,
                "X402_BALANCE_LIMIT",
                "The payment settled but the balance would pass the most an account may hold; ask the operator.",
                "balance_limit",
            ) from None
        async with self._engine.begin() as conn:
            await conn.execute(
                update(x402_payments)
                .where(x402_payments.c.id == payment_id)
                .values(status="settled", account_id=account_id, settled_at=utcnow(), tx_hash=tx_hash)
            )
        balance, _ = await self._ledger.balances(account_id)
        return TopUp(payment_id, auth.payer, amount, balance, tx_hash, self.terms.network)

    async def _record(self, payment_id: str, tx_hash: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(x402_payments).where(x402_payments.c.id == payment_id).values(tx_hash=tx_hash)
            )

    async def _forget(self, payment_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(x402_payments).where(
                    x402_payments.c.id == payment_id, x402_payments.c.status == "pending"
                )
            )

    async def account_for(self, wallet: str, *, create: bool = False) -> str | None:
        """The account a wallet tops up: its binding, or (create) a new account bound to it."""
        found = await self._wallets.account_of(wallet)
        if found is not None or not create:
            return found
        now = utcnow()
        account_id = new_id("acct")
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(accounts).values(
                        id=account_id,
                        name=f"x402 wallet {wallet}",
                        balance_nano=0,
                        reserved_nano=0,
                        age_verified=False,
                        plan="standard",
                        created_at=now,
                    )
                )
                await conn.execute(
                    insert(wallet_bindings).values(address=wallet, account_id=account_id, created_at=now)
                )
        except IntegrityError:
            pass  # a concurrent top-up of the same wallet bound it first
        return await self._wallets.account_of(wallet)

    async def balance(self, wallet: str) -> dict[str, Any]:
        """(balance nano, whether it can pay for a call) of the wallet's account; 0 for an unknown wallet."""
        account_id = await self.account_for(wallet)
        if account_id is None:
            return {"balance_nano": 0, "can_consume": False}
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.balance_nano, accounts.c.reserved_nano, accounts.c.suspended).where(
                        accounts.c.id == account_id
                    )
                )
            ).one()
        can = row.balance_nano - row.reserved_nano > 0 and not row.suspended
        return {"balance_nano": int(row.balance_nano), "can_consume": bool(can)}

    async def transactions(
        self, wallet: str, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]], bool]:
        """(current balance, a page of the account's balance moves, newest first, has more)."""
        account_id = await self.account_for(wallet)
        if account_id is None:
            return 0, [], False
        moves = ledger.c.amount_nano != 0
        async with self._engine.connect() as conn:
            balance = int(
                (
                    await conn.execute(select(accounts.c.balance_nano).where(accounts.c.id == account_id))
                ).scalar_one()
            )
            rows = (
                await conn.execute(
                    select(
                        ledger.c.id,
                        ledger.c.kind,
                        ledger.c.amount_nano,
                        ledger.c.reference,
                        ledger.c.created_at,
                    )
                    .where(ledger.c.account_id == account_id, moves)
                    .order_by(ledger.c.id.desc())
                    .limit(limit + 1)
                    .offset(offset)
                )
            ).all()
            later = 0
            if rows:
                later = int(
                    (
                        await conn.execute(
                            select(func.coalesce(func.sum(ledger.c.amount_nano), 0)).where(
                                ledger.c.account_id == account_id, moves, ledger.c.id > rows[0].id
                            )
                        )
                    ).scalar_one()
                )
        after = balance - later
        page = []
        for entry in rows[:limit]:
            page.append(
                {
                    "id": f"ledger_{entry.id}",
                    "amount": usd(entry.amount_nano),
                    "balanceAfter": usd(after),
                    "type": KINDS.get(entry.kind, entry.kind.upper()),
                    "createdAt": as_utc(entry.created_at).isoformat().replace("+00:00", "Z"),
                    "requestId": entry.reference if entry.kind == "settle" else None,
                    "modelId": None,
                }
            )
            after -= int(entry.amount_nano)
        return balance, page, len(rows) > limit


def build(settings: Settings, engine: AsyncEngine, ledger_: Ledger) -> X402 | None:
    """The x402 service when the operator configured all of it, else None (the routes say it is off)."""
    if not settings.x402_enabled:
        return None
    assert settings.x402_pay_to and settings.usdc_contract and settings.chain_rpc_url
    assert settings.x402_settlement_key is not None
    units = 10**6
    terms = Terms(
        chain_id=settings.chain_id,
        asset=settings.usdc_contract.lower(),
        pay_to=settings.x402_pay_to.lower(),
        token_name=settings.x402_token_name,
        token_version=settings.x402_token_version,
        min_units=int(settings.x402_min_top_up_usd * units),
        max_units=int(settings.x402_max_top_up_usd * units),
    )
    chain = Chain(
        settings.chain_rpc_url,
        settings.chain_id,
        terms.asset,
        settings.x402_settlement_key.get_secret_value(),
    )
    return X402(engine, ledger_, chain, terms, receipt_timeout=settings.x402_receipt_timeout_seconds)
