"""API keys (DESIGN §8, §9): shown once, stored as an HMAC, authenticated, revoked, expired, tiered."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.conftest import KEY_PEPPER as PEPPER
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import ConsumptionLimit, Keys, KeySettings, RateLimits
from tollway.core.caller import KeyLimit
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import api_keys


async def assert_auth_fails(keys: Keys, raw: str | None) -> None:
    with pytest.raises(TollwayError) as info:
        await keys.authenticate(raw)
    assert info.value.code is ErrorCode.AUTHENTICATION_FAILED
    assert info.value.status == 401


async def test_mint_shows_the_secret_once_and_list_never(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("keys")
    minted = await keys.mint(account.id, KeySettings(label="ci", scope="admin"))
    raw = minted["key"]
    assert raw.startswith("tw_") and len(raw) > 40
    assert minted["id"].startswith("key_")
    assert (minted["account_id"], minted["label"], minted["scope"]) == (account.id, "ci", "admin")
    assert minted["last6Chars"] == raw[-6:]
    assert minted["display"] == f"{raw[:7]}…{raw[-6:]}"

    second = await keys.mint(account.id, KeySettings())
    assert second["key"] != raw
    listed = await keys.list(account.id)
    assert [k["id"] for k in listed] == [minted["id"], second["id"]]
    dumped = json.dumps(listed, default=str)
    for secret in (raw, second["key"]):
        assert secret not in dumped
        assert secret[len("tw_") :] not in dumped
    assert all("key" not in k for k in listed)


async def test_authenticate_returns_the_caller(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("caller")
    settings = KeySettings(
        label="worker",
        scope="inference",
        consumption_limit=ConsumptionLimit(usd="5.00", period="day"),
        rate_limits=RateLimits(rpm=60, concurrency=2),
    )
    minted = await keys.mint(account.id, settings)
    caller = await keys.authenticate(minted["key"])
    assert caller.account_id == account.id
    assert caller.key_id == minted["id"]
    assert (caller.label, caller.scope, caller.content_tier) == ("worker", "inference", "sfw")
    assert caller.age_verified is False
    assert not caller.is_operator
    assert caller.key_limit == KeyLimit(minted["id"], 5_000_000_000, "day")
    assert caller.rate_limits == {"rpm": 60, "concurrency": 2}
    assert minted["consumption_limit"] == {"usd": "5.000000000", "period": "day"}


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "tw_" + "A" * 43,  # well-formed, unknown
        "not-a-key",
        "Bearer tw_abc",
        "tw_" + "x" * 300,  # over the length cap
        "tw_\x00\n",
    ],
)
async def test_bad_keys_are_401(keys: Keys, accts: Accounts, raw: str | None) -> None:
    await accts.create("bystander")
    await keys.mint((await accts.create("other")).id, KeySettings())
    await assert_auth_fails(keys, raw)


async def test_a_key_minted_with_another_pepper_does_not_authenticate(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    account = await accts.create("pepper")
    raw = (await keys.mint(account.id, KeySettings()))["key"]
    other = Keys(engine, pepper=b"another-pepper", prefix="tw_", cache_seconds=5)
    await assert_auth_fails(other, raw)
    assert (await keys.authenticate(raw)).account_id == account.id


async def test_revoke_takes_effect_at_once(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("revoke")
    minted = await keys.mint(account.id, KeySettings())
    kept = await keys.mint(account.id, KeySettings())
    assert (await keys.authenticate(minted["key"])).key_id == minted["id"]  # now cached
    assert (await keys.authenticate(kept["key"])).key_id == kept["id"]
    revoked = await keys.revoke(minted["id"])
    assert revoked["revoked"] is True
    await assert_auth_fails(keys, minted["key"])
    assert (await keys.authenticate(kept["key"])).key_id == kept["id"]
    assert [k["id"] for k in await keys.list(account.id)] == [kept["id"]]
    with pytest.raises(TollwayError) as info:
        await keys.revoke(minted["id"])  # already revoked
    assert info.value.code is ErrorCode.NOT_FOUND


async def test_forgetting_the_cache_reads_a_revocation_made_elsewhere(
    keys: Keys, accts: Accounts, engine: AsyncEngine
) -> None:
    """Another replica revoked the key; the key-event bus reconnected and could not say which."""
    account = await accts.create("elsewhere")
    minted = await keys.mint(account.id, KeySettings())
    assert (await keys.authenticate(minted["key"])).key_id == minted["id"]  # now cached
    async with engine.begin() as conn:
        await conn.execute(update(api_keys).where(api_keys.c.id == minted["id"]).values(revoked_at=utcnow()))
    assert (await keys.authenticate(minted["key"])).key_id == minted["id"]  # the cache still says yes
    keys.forget_all()
    await assert_auth_fails(keys, minted["key"])


async def test_revoke_is_scoped_to_the_owning_account(keys: Keys, accts: Accounts) -> None:
    owner, stranger = await accts.create("owner"), await accts.create("stranger")
    minted = await keys.mint(owner.id, KeySettings())
    with pytest.raises(TollwayError) as info:
        await keys.revoke(minted["id"], account_id=stranger.id)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert (await keys.authenticate(minted["key"])).account_id == owner.id
    await keys.revoke(minted["id"], account_id=owner.id)
    await assert_auth_fails(keys, minted["key"])


async def test_expired_key_is_401(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("expiry")
    expired = await keys.mint(account.id, KeySettings(expires_at=utcnow() - timedelta(minutes=1)))
    await assert_auth_fails(keys, expired["key"])
    valid = await keys.mint(account.id, KeySettings(expires_at=utcnow() + timedelta(hours=1)))
    caller = await keys.authenticate(valid["key"])
    assert caller.expires_at is not None and caller.expires_at > utcnow()


async def test_uncensored_keys_need_an_age_verified_account(keys: Keys, accts: Accounts) -> None:
    minor = await accts.create("unverified")
    with pytest.raises(TollwayError) as info:
        await keys.mint(minor.id, KeySettings(content_tier="uncensored"))
    assert info.value.code is ErrorCode.AGE_VERIFICATION_REQUIRED
    assert info.value.status == 403
    assert info.value.param == "content_tier"
    assert await keys.list(minor.id) == []

    adult = await accts.create("verified", age_verified=True)
    minted = await keys.mint(adult.id, KeySettings(content_tier="uncensored"))
    caller = await keys.authenticate(minted["key"])
    assert (caller.content_tier, caller.age_verified) == ("uncensored", True)


async def test_mint_for_unknown_account_is_not_found(keys: Keys) -> None:
    with pytest.raises(TollwayError) as info:
        await keys.mint("acct_missing", KeySettings())
    assert info.value.code is ErrorCode.NOT_FOUND


async def test_only_the_hmac_is_stored(engine: AsyncEngine, keys: Keys, accts: Accounts) -> None:
    account = await accts.create("storage")
    minted = await keys.mint(account.id, KeySettings(label="db-check"))
    raw = minted["key"]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(api_keys).where(api_keys.c.account_id == account.id))).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.key_hash != raw
    assert row.key_hash == hmac.new(PEPPER, raw.encode(), hashlib.sha256).hexdigest()
    assert row.key_hash != hashlib.sha256(raw.encode()).hexdigest()  # peppered, not a bare hash
    for column, value in row._mapping.items():
        text = json.dumps(value, default=str)
        assert raw not in text, column
        assert raw[len("tw_") :] not in text, column


async def test_operator_key_is_created_once(keys: Keys, engine: AsyncEngine) -> None:
    # Per database: on the shared PostgreSQL database another test may have created it already.
    first = await keys.ensure_operator_key()
    assert await keys.ensure_operator_key() is None
    if engine.dialect.name == "sqlite":  # a fresh database
        assert first is not None
    if first is not None:
        caller = await keys.authenticate(first)
        assert caller.is_operator and caller.account_id is None
    env = Keys(engine, pepper=PEPPER, prefix="tw_", cache_seconds=5, operator_key="tw_from_env")
    assert (await env.authenticate("tw_from_env")).is_operator
