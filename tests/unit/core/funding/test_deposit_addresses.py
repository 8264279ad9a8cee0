"""Deposit addresses and amounts (issue 25): BIP-32 public derivation against known vectors, exact units.

Allocation runs on SQLite and PostgreSQL: one index per account, stable, concurrent first requests
of one account or of many get distinct, stored addresses."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal

import pytest
from bip32 import BIP32  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.hdaccount import seed_from_mnemonic
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.access.accounts import Accounts
from tollway.core.funding.deposit_addresses import DepositAddresses, XpubError, address_at, parse_xpub
from tollway.core.funding.deposits import reference, topic_of, units_to_nano, usd_to_units
from tollway.errors import TollwayError
from tollway.settings import ConfigurationError, Settings

# BIP-32 test vector 1: the public extended key of m/0H, and of its non-hardened child m/0H/1.
VECTOR1_M_0H = "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw"
VECTOR1_M_0H_1 = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"
# The BIP-39 "abandon … about" wallet: the xpub of m/44'/60'/0'/0 and its first two Ethereum addresses.
MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
XPUB = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"
FIRST = ("0x9858EfFD232B4033E47d90003D41EC34EcaEda94", "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0")


def test_public_derivation_matches_the_bip32_vector() -> None:
    assert BIP32.from_xpub(VECTOR1_M_0H).get_xpub_from_path([1]) == VECTOR1_M_0H_1


def test_addresses_are_the_wallets_own() -> None:
    node = parse_xpub(XPUB)
    assert (address_at(node, 0), address_at(node, 1)) == FIRST
    Account.enable_unaudited_hdwallet_features()
    for index in (2, 7, 2**31 - 1):  # what the operator's wallet derives at m/44'/60'/0'/0/i
        wallet = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        assert address_at(node, index) == wallet.address
    with pytest.raises(ValueError):
        address_at(node, 2**31)  # hardened: needs the private key


def test_a_private_or_broken_key_is_refused_without_echoing_it() -> None:
    xprv = BIP32.from_seed(seed_from_mnemonic(MNEMONIC, "")).get_xpriv()
    with pytest.raises(XpubError, match="PRIVATE") as caught:
        parse_xpub(xprv)
    assert xprv not in str(caught.value)
    with pytest.raises(XpubError, match="not an extended public key"):
        parse_xpub("xpub-nonsense")


def test_units_convert_exactly() -> None:
    assert units_to_nano(1) == 1_000
    assert units_to_nano(1_000_000) == 1_000_000_000  # 1 USDC = 1 USD = 1e9 nano-USD
    assert units_to_nano(123_456_789) == 123_456_789_000
    assert units_to_nano(0) == 0
    with pytest.raises(ValueError):
        units_to_nano(-1)
    assert usd_to_units(Decimal("0.000001")) == 1 and usd_to_units("5") == 5_000_000
    with pytest.raises(ValueError):
        usd_to_units("0.0000001")
    tx = "0x" + "ab" * 32
    assert reference(tx, 7) == f"chain:{tx}:7" and len(reference(tx, 10**6)) <= 120
    assert topic_of(FIRST[0]) == "0x" + "0" * 24 + FIRST[0][2:].lower()


def test_settings_name_what_is_missing() -> None:
    assert not Settings(_env_file=None).deposits_enabled  # type: ignore[call-arg]
    half = Settings(_env_file=None, deposit_xpub=XPUB, chain_rpc_url="http://127.0.0.1:1")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError) as caught:
        half.check_deposits()
    message = str(caught.value)
    for name in ("TOLLWAY_USDC_CONTRACT", "TOLLWAY_DEPOSIT_CONFIRMATIONS", "TOLLWAY_DEPOSIT_MIN_USD"):
        assert name in message
    assert "TOLLWAY_CHAIN_RPC_URL" not in message and XPUB not in message
    fine = Settings(  # type: ignore[call-arg]
        _env_file=None,
        deposit_xpub=XPUB,
        chain_rpc_url="http://127.0.0.1:1",
        usdc_contract="0x" + "11" * 20,
        deposit_confirmations=3,
        deposit_min_usd=Decimal("0.0000001"),
    )
    with pytest.raises(ConfigurationError, match="6 decimals"):
        fine.check_deposits()


async def test_one_stable_index_per_account(engine: AsyncEngine, accts: Accounts) -> None:
    addresses = DepositAddresses(engine, XPUB)
    try:
        ids = [(await accts.create(f"dep-{secrets.token_hex(3)}", credit_nano=0)).id for _ in range(4)]
        # Concurrent first requests: of one account (same answer) and of several (distinct indexes).
        first = await asyncio.gather(*(addresses.address_of(i) for i in ids + ids))
        again = [await addresses.address_of(i) for i in ids]
        assert first[:4] == first[4:] == again
        assert len({a.index for a in again}) == 4 and len({a.address for a in again}) == 4
        for found in again:
            assert found.address == address_at(parse_xpub(XPUB), found.index)
        known = await addresses.known()
        assert all(known[a.address.lower()] == a.account_id for a in again)
        with pytest.raises(TollwayError, match="No account"):
            await addresses.address_of("acct_missing")
        other = DepositAddresses(engine, VECTOR1_M_0H)  # the operator swapped the xpub: named, not hidden
        try:
            with pytest.raises(TollwayError, match="TOLLWAY_DEPOSIT_XPUB"):
                await other.address_of(ids[0])
        finally:
            await other.aclose()
    finally:
        await addresses.aclose()
