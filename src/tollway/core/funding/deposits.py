"""USDC deposits to per-account addresses (issue 25): the watcher that credits them exactly once.

The watcher follows the token contract's `Transfer(from, to, value)` logs whose `to` is a known
deposit address (core/funding/deposit_addresses.py), over JSON-RPC (core/funding/chain.py):
`eth_getLogs` in ranges of at most `scan_blocks` blocks, from the persisted cursor
(core/funding/deposit_cursor.py, held under a lease so one replica scans) up to the newest block
with N confirmations (head − N + 1). It never reads a block with fewer: a deposit whose block is
replaced (a reorg) before N confirmations is never seen, so never credited. When it credits, it asks
the node for the canonical hash of the log's block again (`eth_getBlockByNumber`); a log whose block
is no longer canonical, or marked `removed`, stops the pass without moving the cursor.

Crediting is ONE transaction per log: a `chain_deposits` row, unique per (tx hash, log index), then
the ledger credit (charges.fund, the path of every funding rail) referenced `chain:<tx hash>:<log
index>`. So a log is credited once however often it is scanned: after a crash mid-range (the cursor
still names the range's first block), or by two watchers racing when a lease expired under a slow
one. Amounts convert exactly: USDC has 6 decimals, so one base unit is 1,000 nano-USD. A transfer
below the minimum (TOLLWAY_DEPOSIT_MIN_USD) is dust: recorded, logged and counted
(tollway_deposits_total{outcome="dust"}), not credited; one that would take the balance past the
most an account may hold is `refused` (recorded, logged, counted; the operator credits by hand).
Logs name the transaction, never an account's key or anything secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.core.funding.chain import ChainError, ChainReader
from tollway.core.funding.deposit_addresses import DepositAddresses, XpubError
from tollway.core.funding.deposit_cursor import DepositCursor
from tollway.core.money import charges
from tollway.core.money.amounts import MAX_NANO
from tollway.settings import ConfigurationError, Settings
from tollway.store.funding_tables import chain_deposits
from tollway.store.transactor import Transactor
from tollway.telemetry.metrics import DEPOSIT_LAG, DEPOSITS

log = logging.getLogger("tollway.funding.deposits")
DECIMALS = 6
NANO_PER_UNIT = 1_000  # nano-USD per USDC base unit: 10 ** (9 - DECIMALS)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ADDRESSES_PER_QUERY = 200  # recipient topics OR-ed in one eth_getLogs


def units_to_nano(units: int) -> int:
    """Token base units (6 decimals) as nano-USD, exactly."""
    if units < 0:
        raise ValueError("a token amount is not negative")
    return units * NANO_PER_UNIT


def usd_to_units(usd: Decimal | str) -> int:
    """A USD amount as token base units; more than 6 decimals is an error, not a rounding."""
    scaled = Decimal(usd) * 10**DECIMALS
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{usd} USD is not a whole number of USDC base units (6 decimals)")
    return int(scaled)


def reference(tx_hash: str, log_index: int) -> str:
    return f"chain:{tx_hash}:{log_index}"


def topic_of(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


class Reorganized(Exception):
    """A log's block is not (or no longer) canonical: the pass stops; the range is scanned again."""


@dataclass(frozen=True, slots=True)
class Transfer:
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    to: str  # lower-case
    units: int

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Transfer:
        topics = item["topics"]
        return cls(
            tx_hash=str(item["transactionHash"]).lower(),
            log_index=int(str(item["logIndex"]), 16),
            block_number=int(str(item["blockNumber"]), 16),
            block_hash=str(item["blockHash"]).lower(),
            to="0x" + str(topics[2])[-40:].lower(),
            units=int(str(item["data"]), 16) if item["data"] not in ("0x", "") else 0,
        )


@dataclass
class Scan:
    """What one pass did: blocks scanned, and the count of each outcome."""

    held: bool = True  # False: another watcher holds the lease; nothing was scanned
    first: int = -1
    last: int = -1  # the last block scanned (-1: none)
    head: int = -1
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass(frozen=True, slots=True)
class WatchTerms:
    contract: str  # lower-case
    confirmations: int
    min_units: int
    scan_blocks: int = 500
    start_block: int | None = None  # the first block of the first pass; None: the newest confirmed + 1


class DepositWatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        reader: ChainReader,
        addresses: DepositAddresses,
        terms: WatchTerms,
        *,
        lease_seconds: float = 60.0,
        holder: str | None = None,
    ) -> None:
        self._tx = Transactor(engine)
        self.reader = reader
        self.addresses = addresses
        self.terms = terms
        self.cursor = DepositCursor(engine, terms.contract, lease_seconds, holder)

    async def aclose(self) -> None:
        await self._tx.aclose()

    async def scan_once(self, progress: Callable[[Scan], None] | None = None) -> Scan:
        """One pass: from the cursor to the newest confirmed block, range by range (each range's credits,
        then the cursor), while this watcher holds the lease."""
        scan = Scan()
        cursor = await self.cursor.acquire()
        scan.head = await self.reader.block_number()
        confirmed = scan.head - self.terms.confirmations + 1
        if cursor is None:
            scan.held = False
            _lag(confirmed, (await self.cursor.read()).next_block)
            return scan
        if cursor.next_block < 0:  # the first pass ever: from the operator's start block, else from now
            start = self.terms.start_block if self.terms.start_block is not None else max(confirmed + 1, 0)
            moved = await self.cursor.advance(cursor, start)
            if moved is None:
                scan.held = False
                return scan
            cursor = moved
        scan.first = cursor.next_block
        known = await self.addresses.known()  # after the head: every address a scanned block can pay
        while cursor.next_block <= confirmed:
            last = min(cursor.next_block + self.terms.scan_blocks - 1, confirmed)
            await self._range(cursor.next_block, last, known, scan)
            moved = await self.cursor.advance(cursor, last + 1)
            if moved is None:  # the lease was lost: the new holder goes on from the row it read
                log.warning("deposit watcher: the lease was taken over; this pass stops")
                break
            cursor, scan.last = moved, last
            _lag(confirmed, cursor.next_block)
            if progress is not None:
                progress(scan)
        _lag(confirmed, cursor.next_block)
        return scan

    async def release(self) -> None:
        cursor = await self.cursor.read()
        if cursor.holder == self.cursor.holder:
            await self.cursor.release(cursor)

    async def run_forever(self, poll_seconds: float) -> None:
        """The server's background task: a pass every `poll_seconds`; errors are logged and retried."""
        try:
            while True:
                try:
                    await self.scan_once()
                except (ChainError, Reorganized) as exc:
                    DEPOSITS.labels("error").inc()
                    log.warning("deposit watcher: %s; retrying in %.0f s", exc, poll_seconds)
                except Exception:
                    DEPOSITS.labels("error").inc()
                    log.exception("deposit watcher pass failed")
                await asyncio.sleep(poll_seconds)
        finally:
            try:
                await asyncio.shield(self.release())
            except Exception:  # pragma: no cover - the lease expires by itself
                log.warning("deposit watcher: could not release its lease")

    async def _range(self, first: int, last: int, known: dict[str, str], scan: Scan) -> None:
        addresses = sorted(known)
        items: list[dict[str, Any]] = []
        for at in range(0, len(addresses), ADDRESSES_PER_QUERY):
            chunk = [topic_of(a) for a in addresses[at : at + ADDRESSES_PER_QUERY]]
            items += await self.reader.logs(self.terms.contract, first, last, [TRANSFER_TOPIC, None, chunk])
        transfers = []
        for item in items:
            if item.get("removed"):
                raise Reorganized(f"a log of block range {first}-{last} was removed")
            try:
                transfers.append(Transfer.parse(item))
            except (KeyError, IndexError, TypeError, ValueError):
                raise ChainError("eth_getLogs: an unreadable log", answered=True) from None
        canonical: dict[int, str | None] = {}
        for transfer in sorted(transfers, key=lambda t: (t.block_number, t.log_index)):
            account_id = known.get(transfer.to)
            if account_id is None:
                scan.count("unknown")
                DEPOSITS.labels("unknown").inc()
                continue
            if transfer.block_number not in canonical:  # re-checked now, at confirmation time
                canonical[transfer.block_number] = await self.reader.block_hash(transfer.block_number)
            if canonical[transfer.block_number] != transfer.block_hash:
                raise Reorganized(f"block {transfer.block_number} is no longer the one its log was in")
            outcome = await self.credit(transfer, account_id)
            scan.count(outcome)

    async def credit(self, transfer: Transfer, account_id: str) -> str:
        """Apply one transfer: credited, dust, refused — or duplicate (applied before)."""
        try:
            outcome = await self._tx.run(lambda conn: self._apply(conn, transfer, account_id))
        except IntegrityError:
            return "duplicate"
        DEPOSITS.labels(outcome).inc()
        if outcome != "credited":
            log.warning(
                "deposit %s: tx %s log %d, %d base units (minimum %d)",
                outcome,
                transfer.tx_hash,
                transfer.log_index,
                transfer.units,
                self.terms.min_units,
            )
        return outcome

    def _apply(self, conn: Connection, transfer: Transfer, account_id: str) -> str:
        dust = transfer.units < self.terms.min_units
        nano = 0 if dust else units_to_nano(transfer.units)
        outcome = "dust" if dust else ("credited" if nano <= MAX_NANO else "refused")
        conn.execute(  # unique (tx hash, log index): a second application fails here
            insert(chain_deposits).values(
                tx_hash=transfer.tx_hash,
                log_index=transfer.log_index,
                block_number=transfer.block_number,
                block_hash=transfer.block_hash,
                address=transfer.to,
                account_id=account_id,
                amount_units=str(transfer.units),
                amount_nano=nano if outcome == "credited" else 0,
                outcome=outcome,
                created_at=utcnow(),
            )
        )
        if outcome == "credited" and not charges.fund(
            conn, account_id, nano, "credit", reference(transfer.tx_hash, transfer.log_index)
        ):
            outcome = "refused"  # past the most an account may hold
            conn.execute(
                update(chain_deposits)
                .where(chain_deposits.c.tx_hash == transfer.tx_hash)
                .where(chain_deposits.c.log_index == transfer.log_index)
                .values(outcome=outcome, amount_nano=0)
            )
        return outcome


def _lag(confirmed: int, next_block: int) -> None:
    """Confirmed blocks not scanned yet (0: caught up)."""
    if next_block >= 0:
        DEPOSIT_LAG.set(max(confirmed - next_block + 1, 0))


@dataclass
class Deposits:
    """The rail as the server and the CLI use it: addresses, the watcher, and what the route shows."""

    addresses: DepositAddresses
    watcher: DepositWatcher
    chain_id: int
    poll_seconds: float

    async def aclose(self) -> None:
        await self.watcher.aclose()
        await self.watcher.reader.aclose()
        await self.addresses.aclose()


def build(settings: Settings, engine: AsyncEngine) -> Deposits | None:
    """The deposit rail when the operator configured all of it (Settings.check_deposits), else None."""
    settings.check_deposits()
    if not settings.deposits_enabled:
        return None
    assert settings.deposit_xpub and settings.usdc_contract and settings.chain_rpc_url
    assert settings.deposit_confirmations is not None and settings.deposit_min_usd is not None
    try:
        addresses = DepositAddresses(engine, settings.deposit_xpub)
    except XpubError as exc:
        raise ConfigurationError(str(exc)) from None
    terms = WatchTerms(
        contract=settings.usdc_contract.lower(),
        confirmations=settings.deposit_confirmations,
        min_units=usd_to_units(settings.deposit_min_usd),
        scan_blocks=settings.deposit_scan_blocks,
        start_block=settings.deposit_start_block,
    )
    watcher = DepositWatcher(
        engine,
        ChainReader(settings.chain_rpc_url),
        addresses,
        terms,
        lease_seconds=settings.deposit_lease_seconds,
    )
    return Deposits(addresses, watcher, settings.chain_id, settings.deposit_poll_seconds)
