"""Keys as an account sees them: one key's view, tenant scoping, the audit trail, expiry checks.

The money side of a key (its consumption limit, its tier) is only as safe as these: a `get` that
ignored the account would show another tenant's limits, a revoked key still listed would look
usable, an audit row with the wrong actor would hide who changed a key.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import ConsumptionLimit, Keys, KeySettings, RateLimits, check_future
from tollway.errors import ErrorCode, TollwayError


async def test_get_shows_one_active_key_of_its_own_account(keys: Keys, accts: Accounts) -> None:
    owner, stranger = await accts.create("owner"), await accts.create("stranger")
    expires = utcnow() + timedelta(days=3)
    settings = KeySettings(
        label="cust-1",
        scope="inference",
        expires_at=expires,
        consumption_limit=ConsumptionLimit(usd="2.500000001", period="week"),
        rate_limits=RateLimits(rpm=7, tpm=900),
    )
    minted = await keys.mint(owner.id, settings)
    view = await keys.get(minted["id"], owner.id)
    assert view == {k: v for k, v in minted.items() if k != "key"}
    assert view["consumption_limit"] == {"usd": "2.500000001", "period": "week"}
    assert view["rate_limits"] == {"rpm": 7, "tpm": 900}
    assert view["expires_at"] == expires.isoformat()
    assert (view["object"], view["revoked"], view["label"]) == ("api_key", False, "cust-1")
    for account, key_id in ((stranger.id, minted["id"]), (owner.id, "key_missing")):
        with pytest.raises(TollwayError) as info:
            await keys.get(key_id, account)
        assert (info.value.code, info.value.param) == (ErrorCode.NOT_FOUND, "id")
        assert key_id in info.value.message
    await keys.revoke(minted["id"], account_id=owner.id)
    with pytest.raises(TollwayError):
        await keys.get(minted["id"], owner.id)  # a revoked key is no longer one of the account's keys


async def test_list_shows_only_the_accounts_active_keys(keys: Keys, accts: Accounts) -> None:
    owner, other = await accts.create("a"), await accts.create("b")
    first = await keys.mint(owner.id, KeySettings(label="first"))
    second = await keys.mint(owner.id, KeySettings(label="second"))
    await keys.mint(other.id, KeySettings(label="elsewhere"))
    await keys.revoke(first["id"])
    assert [k["label"] for k in await keys.list(owner.id)] == ["second"]
    assert (await keys.list(owner.id))[0]["id"] == second["id"]


async def test_revoke_returns_the_revoked_view_and_is_audited(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("audit")
    by_operator = await keys.mint(account.id, KeySettings(label="one"))
    by_admin = await keys.mint(account.id, KeySettings(label="two"), actor="key_admin")
    revoked = await keys.revoke(by_operator["id"])
    assert (revoked["id"], revoked["revoked"], revoked["label"]) == (by_operator["id"], True, "one")
    await keys.revoke(by_admin["id"], account_id=account.id, actor="key_admin")
    with pytest.raises(TollwayError) as info:
        await keys.revoke(by_admin["id"], account_id=account.id)
    assert (info.value.code, info.value.param) == (ErrorCode.NOT_FOUND, "id")
    events = await keys.events(account.id)
    assert [(e["key_id"], e["event"], e["actor"]) for e in events] == [
        (by_admin["id"], "revoked", "key_admin"),
        (by_operator["id"], "revoked", "operator"),
        (by_admin["id"], "minted", "key_admin"),
        (by_operator["id"], "minted", "operator"),
    ]
    assert all(e["object"] == "key_event" and e["created_at"] for e in events)
    assert [e["event"] for e in await keys.events(account.id, limit=1)] == ["revoked"]
    assert await keys.events((await accts.create("quiet")).id) == []


def test_a_new_keys_expiry_must_lie_ahead() -> None:
    check_future(None, "expires_at")
    check_future(utcnow() + timedelta(seconds=5), "expires_at")
    for past in (utcnow() - timedelta(seconds=1), utcnow() - timedelta(days=400)):
        with pytest.raises(TollwayError) as info:
            check_future(past, "expiresAt")
        assert (info.value.code, info.value.param) == (ErrorCode.VALIDATION, "expiresAt")
        assert info.value.message == "`expiresAt` must be in the future."


async def test_revoking_a_key_that_is_not_active_names_it(keys: Keys, accts: Accounts) -> None:
    await accts.create("none")
    with pytest.raises(TollwayError) as info:
        await keys.revoke("key_missing")
    assert (info.value.code, info.value.param, info.value.message) == (
        ErrorCode.NOT_FOUND,
        "id",
        "No active key 'key_missing'.",
    )


async def test_the_audit_trail_shows_the_newest_two_hundred_events(keys: Keys, accts: Accounts) -> None:
    account = await accts.create("busy")
    minted = [await keys.mint(account.id, KeySettings()) for _ in range(201)]
    events = await keys.events(account.id)
    assert len(events) == 200
    assert events[0]["key_id"] == minted[-1]["id"] and events[-1]["key_id"] == minted[1]["id"]
