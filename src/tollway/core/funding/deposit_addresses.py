"""Each account's own USDC deposit address (issue 25: `GET /v1/deposit-address`).

The operator gives an extended PUBLIC key (TOLLWAY_DEPOSIT_XPUB, BIP-32; e.g. the xpub of
m/44'/60'/0'/0 in their wallet); account number i gets the address of its non-hardened child i
(public derivation, CKDpub: no private key is needed, and none is ever given to the server — an
xprv is refused). The operator's wallet, deriving the same path, holds the keys that spend it.

An account's index is allocated once, on its first request, and stored with its address
(`deposit_addresses`: unique account, unique index), so it never changes. Allocation is one
transaction taking the next free index; two concurrent first requests (of one account or of two)
collide on a unique key and the loser reads again. The stored address is re-derived on every read:
an xpub changed under existing addresses is named, never silently answered with another address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.errors import ErrorCode, TollwayError
from tollway.store.funding_tables import deposit_addresses
from tollway.store.tables import accounts
from tollway.store.transactor import Transactor

if TYPE_CHECKING:
    from bip32 import BIP32  # type: ignore[import-untyped]

# The key-derivation and address libraries are imported where they are used: with eth_utils they
# are about 0.1 s of every process's start (the CLI's too), and only a server that takes USDC
# deposits derives an address.

MAX_INDEX = 2**31 - 1  # non-hardened children only: hardened ones need the private key
PRIVATE_PREFIXES = ("xprv", "tprv", "yprv", "zprv", "uprv", "vprv")


class XpubError(ValueError):
    """TOLLWAY_DEPOSIT_XPUB is not a usable extended public key (the message says why, not the key)."""


def parse_xpub(xpub: str) -> BIP32:
    xpub = xpub.strip()
    if xpub.startswith(PRIVATE_PREFIXES):
        raise XpubError(
            "TOLLWAY_DEPOSIT_XPUB is an extended PRIVATE key: give the server the extended public key "
            "(xpub…) only; keep the private key in your wallet."
        )
    from bip32 import BIP32

    try:
        node = BIP32.from_xpub(xpub)
    except Exception:
        raise XpubError(
            "TOLLWAY_DEPOSIT_XPUB is not an extended public key (a base58 xpub… string)."
        ) from None
    if node.privkey is not None:  # pragma: no cover - from_xpub never keeps one
        raise XpubError("TOLLWAY_DEPOSIT_XPUB must be a public key.")
    return node


def address_at(node: BIP32, index: int) -> str:
    """The Ethereum address (EIP-55 checksummed) of the node's non-hardened child `index`."""
    from coincurve import PublicKey
    from eth_utils.crypto import keccak

    if not 0 <= index <= MAX_INDEX:
        raise ValueError("a non-hardened child index is 0 to 2**31 - 1")
    compressed = node.get_pubkey_from_path([index])
    point = PublicKey(compressed).format(compressed=False)[1:]  # x ‖ y, 64 bytes
    return checksummed(keccak(point)[-20:])


def checksummed(address: str | bytes) -> str:
    """The EIP-55 spelling of an address."""
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(address))


@dataclass(frozen=True, slots=True)
class DepositAddress:
    account_id: str
    index: int
    address: str  # checksummed


class DepositAddresses:
    def __init__(self, engine: AsyncEngine, xpub: str) -> None:
        self._engine = engine
        self._tx = Transactor(engine)
        self._node = parse_xpub(xpub)

    async def aclose(self) -> None:
        await self._tx.aclose()

    def derive(self, index: int) -> str:
        return address_at(self._node, index)

    async def address_of(self, account_id: str) -> DepositAddress:
        """The account's address: the stored one, or a newly allocated index's (stored once)."""
        for _ in range(20):  # each lost race means another request allocated: finite
            found = await self._stored(account_id)
            if found is None:
                try:
                    found = await self._tx.run(lambda conn: self._allocate(conn, account_id))
                except IntegrityError:
                    continue  # a concurrent allocation took this account or this index first
            if self.derive(found.index) != found.address:
                raise TollwayError(
                    ErrorCode.INTERNAL,
                    "This account's stored deposit address is not derived from the configured "
                    "TOLLWAY_DEPOSIT_XPUB: the operator changed the xpub; set the original back.",
                )
            return found
        raise TollwayError(ErrorCode.INTERNAL, "Could not allocate a deposit address; retry.")

    async def known(self) -> dict[str, str]:
        """Every allocated address (lower-case) → its account."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(deposit_addresses.c.address, deposit_addresses.c.account_id))
            ).all()
        return {str(address): str(account) for address, account in rows}

    async def _stored(self, account_id: str) -> DepositAddress | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(deposit_addresses.c.idx, deposit_addresses.c.address).where(
                        deposit_addresses.c.account_id == account_id
                    )
                )
            ).first()
        if row is None:
            return None
        return DepositAddress(account_id, int(row.idx), checksummed(str(row.address)))

    def _allocate(self, conn: Connection, account_id: str) -> DepositAddress:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.")
        index = int(
            conn.execute(select(func.coalesce(func.max(deposit_addresses.c.idx) + 1, 0))).scalar_one()
        )
        if index > MAX_INDEX:
            raise TollwayError(ErrorCode.INTERNAL, "Every deposit address index of this xpub is used.")
        address = self.derive(index)
        conn.execute(
            insert(deposit_addresses).values(
                account_id=account_id, idx=index, address=address.lower(), created_at=utcnow()
            )
        )
        return DepositAddress(account_id, index, address)
