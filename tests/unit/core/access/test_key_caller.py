"""Keys (core/access/keys.py), the survivors of the mutation run (docs/testing.md): a secret's exact
length and the 256-character cap, a rotated key's old secret (only its own, only in its grace, and
no longer than the key itself), the caller of a key by id (batches), the caller's plan and a
limit without a period, the views' fields, and minting's limits and refusals, word for word."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.core.access.test_keys import assert_auth_fails
from tollway.base.clock import utcnow
from tollway.core.access import keys as keys_module
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import KEY_CREATION_PER_MINUTE, ConsumptionLimit, Keys, KeySettings
from tollway.core.accounts.key_admin import KeyAdmin
from tollway.core.caller import KeyLimit
from tollway.core.limits.limiter import MemoryLimiter
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts, api_keys


async def _set_account(engine: AsyncEngine, account_id: str, **values: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


async def _set_key(engine: AsyncEngine, key_id: str, **values: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))


def _close(a: datetime | None, b: datetime) -> bool:
    return a is not None and abs((a - b).total_seconds()) < 2


# -- secrets and authentication ---------------------------------------------------------------------


async def test_a_secret_is_the_prefix_and_43_url_safe_characters_and_the_view_names_every_field(
    keys: Keys, accts: Accounts
) -> None:
    account = await accts.create("secret")
    minted = await keys.mint(account.id, KeySettings())
    assert len(minted["key"]) == len("tw_") + 43  # 32 random bytes
    assert minted["content_tier"] == "sfw"
    created = datetime.fromisoformat(minted["created_at"])
    assert created.utcoffset() == timedelta(0) and _close(created, utcnow())
    [listed] = await keys.list(account.id)
    assert (listed["content_tier"], listed["created_at"]) == ("sfw", minted["created_at"])


async def test_a_secret_of_exactly_256_characters_authenticates_and_one_longer_never(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    """Keys are minted shorter; a row whose hash is of a 256- or 257-character secret shows the cap."""
    account = await accts.create("long")
    for length, works in ((256, True), (257, False)):
        minted = await keys.mint(account.id, KeySettings())
        raw = "tw_" + "L" * (length - 3)
        await _set_key(engine, minted["id"], key_hash=keys.hash(raw))
        if works:
            assert (await keys.authenticate(raw)).key_id == minted["id"]
        else:
            await assert_auth_fails(keys, raw)


async def test_a_rotated_key_s_old_secret_works_in_its_grace_and_no_longer_than_the_key(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    account = await accts.create("rotated")
    admin = KeyAdmin(engine, keys)
    ends = utcnow() + timedelta(hours=1)
    plain = await keys.mint(account.id, KeySettings())
    short = await keys.mint(account.id, KeySettings(expires_at=ends))
    for minted in (plain, short):
        await admin.rotate(minted["id"], 86_400, account_id=account.id, actor="operator")
    old = await keys.authenticate(plain["key"])
    assert old.key_id == plain["id"]
    assert _close(old.expires_at, utcnow() + timedelta(days=1))  # the grace ends the old secret
    old_short = await keys.authenticate(short["key"])
    assert _close(old_short.expires_at, ends)  # but never after the key's own expiry
    # A secret that is no key's, old or new, is refused although rotated keys are in their grace.
    await assert_auth_fails(keys, "tw_" + "Z" * 43)


async def test_the_caller_of_a_key_by_id_is_that_key_s_and_refused_once_it_expired_or_was_revoked(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    account = await accts.create("by-id")
    first = await keys.mint(account.id, KeySettings(label="first"))
    second = await keys.mint(account.id, KeySettings(label="second"))
    caller = await keys.caller_of(second["id"])
    assert (caller.key_id, caller.label, caller.account_id) == (second["id"], "second", account.id)
    assert caller.expires_at is None
    await _set_key(engine, first["id"], expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(TollwayError) as expired:
        await keys.caller_of(first["id"])
    assert expired.value.code is ErrorCode.AUTHENTICATION_FAILED
    await _set_key(engine, second["id"], expires_at=utcnow() + timedelta(hours=1))
    assert _close((await keys.caller_of(second["id"])).expires_at, utcnow() + timedelta(hours=1))


async def test_the_caller_carries_the_account_s_plan_and_a_limit_without_a_period_is_a_total(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    account = await accts.create("plan")
    await _set_account(engine, account.id, plan="pro")
    minted = await keys.mint(
        account.id, KeySettings(consumption_limit=ConsumptionLimit(usd="1", period="day"))
    )
    await _set_key(engine, minted["id"], consumption_period=None)  # a row from before periods
    caller = await keys.authenticate(minted["key"])
    assert caller.plan == "pro"
    assert caller.key_limit == KeyLimit(minted["id"], 1_000_000_000, "total")


# -- minting ---------------------------------------------------------------------------------------


async def test_minting_for_no_account_names_it(keys: Keys) -> None:
    with pytest.raises(TollwayError) as info:
        await keys.mint("acct_missing", KeySettings())
    assert (info.value.code, info.value.message) == (ErrorCode.NOT_FOUND, "No account 'acct_missing'.")


async def test_an_account_s_own_keys_per_minute_limit_its_mints_and_not_the_operator_s(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    keys.limiter = MemoryLimiter()
    limited = await accts.create("kpm")
    await _set_account(engine, limited.id, limits={"keys_per_minute": 2})
    for _ in range(2):
        await keys.mint(limited.id, KeySettings(), actor="account")
    with pytest.raises(TollwayError) as info:
        await keys.mint(limited.id, KeySettings(), actor="account")
    assert info.value.code is ErrorCode.RATE_LIMITED
    await keys.mint(limited.id, KeySettings(), actor="operator")  # the operator's mints are exempt
    default = await accts.create("kpm-default")
    for _ in range(KEY_CREATION_PER_MINUTE):
        await keys.mint(default.id, KeySettings(), actor="account")
    with pytest.raises(TollwayError):
        await keys.mint(default.id, KeySettings(), actor="account")


async def test_an_account_holds_at_most_the_active_key_cap_counting_only_its_own_unrevoked_keys(
    monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    monkeypatch.setattr(keys_module, "MAX_ACTIVE_KEYS", 3)
    keys.limiter = MemoryLimiter()
    other = await accts.create("cap-other")
    for _ in range(3):
        await keys.mint(other.id, KeySettings())
    account = await accts.create("cap")
    minted = [await keys.mint(account.id, KeySettings()) for _ in range(3)]
    with pytest.raises(TollwayError) as info:
        await keys.mint(account.id, KeySettings())
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.message == "This account has 3 active keys, the most allowed. Revoke one first."
    assert info.value.headers == {"x-should-retry": "false"}
    await _set_key(engine, minted[0]["id"], revoked_at=utcnow())
    await keys.mint(account.id, KeySettings())


async def test_tier_refusals_say_what_the_operator_sets(
    engine: AsyncEngine, keys: Keys, accts: Accounts
) -> None:
    young = await accts.create("tiers")
    with pytest.raises(TollwayError) as age:
        await keys.mint(young.id, KeySettings(content_tier="uncensored"))
    assert age.value.code is ErrorCode.AGE_VERIFICATION_REQUIRED
    assert (
        age.value.message == "Uncensored keys need an age-verified account; the operator sets age_verified."
    )
    assert age.value.param == "content_tier"
    adult = await accts.create("tiers-adult", age_verified=True)
    await _set_account(engine, adult.id, content_tiers=["uncensored"])
    assert (await keys.mint(adult.id, KeySettings(content_tier="uncensored")))["content_tier"] == "uncensored"
    with pytest.raises(TollwayError) as tier:
        await keys.mint(adult.id, KeySettings(content_tier="sfw"))
    assert tier.value.code is ErrorCode.CONTENT_TIER_FORBIDDEN
    assert tier.value.message == "This account may only have uncensored keys; the operator sets that."
    assert tier.value.param == "content_tier"
