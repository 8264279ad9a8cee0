"""Content policy rules, the moderation hook, catalog loading; web3 tokens; key events on both stores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.config import CatalogError, ContentPolicyConfig, PolicyRule
from tollway.core.access.accounts import Accounts
from tollway.core.access.keys import Keys, KeySettings
from tollway.core.access.policy import ContentPolicy, texts_of
from tollway.core.access.web3 import issue_token, normalize_address, recover_signer, verify_token
from tollway.core.catalog.catalog import Catalog
from tollway.errors import ErrorCode, TollwayError

RULES = ContentPolicyConfig(
    prohibited_categories=["prohibited"],
    rules=[
        PolicyRule(id="hard", pattern=r"banned-\d+", categories=["prohibited"], applies_to="sfw"),
        PolicyRule(id="soft", pattern="spicy", categories=["adult"], applies_to="sfw"),
        PolicyRule(id="everyone", pattern="nobody-may-say-this"),
    ],
)


class FakeModerator:
    def __init__(self, flagged: set[str] | None = None, fail: bool = False) -> None:
        self._flagged = flagged or set()
        self._fail = fail
        self.seen: list[list[str]] = []

    async def flagged(self, texts: list[str]) -> set[str]:
        self.seen.append(texts)
        if self._fail:
            raise ConnectionError("moderation down")
        return self._flagged


async def _blocked(policy: ContentPolicy, tier: str, text: str) -> str | None:
    try:
        await policy.check(tier, [text])
    except TollwayError as exc:
        assert exc.code is ErrorCode.CONTENT_BLOCKED and exc.status == 422
        assert text not in exc.message
        return str(exc.extra["rule"])
    return None


@pytest.mark.parametrize(
    ("tier", "text", "rule"),
    [
        ("sfw", "say banned-42 now", "hard"),
        ("uncensored", "say banned-42 now", "hard"),  # prohibited for every tier
        ("sfw", "SPICY food", "soft"),  # case-insensitive by default
        ("uncensored", "spicy food", None),  # sfw-only rule
        ("sfw", "nobody-may-say-this", "everyone"),
        ("uncensored", "nobody-may-say-this", "everyone"),
        ("sfw", "hello there", None),
    ],
)
async def test_rules_by_tier(tier: str, text: str, rule: str | None) -> None:
    assert await _blocked(ContentPolicy(RULES), tier, text) == rule


async def test_moderation_blocks_flagged_for_sfw_and_prohibited_for_everyone() -> None:
    config = ContentPolicyConfig(prohibited_categories=["sexual/minors"])
    adult = ContentPolicy(config, FakeModerator({"sexual"}))
    assert await _blocked(adult, "sfw", "x") == "moderation"
    assert await _blocked(adult, "uncensored", "x") is None
    minors = ContentPolicy(config, FakeModerator({"sexual/minors"}))
    assert await _blocked(minors, "uncensored", "x") == "moderation"
    clean = FakeModerator(set())
    assert await _blocked(ContentPolicy(config, clean), "sfw", "hello") is None
    assert clean.seen == [["hello"]]


async def test_rules_run_before_moderation_and_moderation_failure_fails_closed() -> None:
    moderator = FakeModerator(fail=True)
    policy = ContentPolicy(RULES, moderator)
    assert await _blocked(policy, "sfw", "banned-1") == "hard"
    assert moderator.seen == []
    with pytest.raises(TollwayError) as caught:
        await policy.check("sfw", ["fine"])
    assert caught.value.code is ErrorCode.SERVICE_UNAVAILABLE


async def test_moderation_fail_open_when_configured() -> None:
    config = ContentPolicyConfig.model_validate(
        {"moderation": {"base_url": "http://127.0.0.1:9/v1", "fail_open": True}}
    )
    await ContentPolicy(config, FakeModerator(fail=True)).check("sfw", ["fine"])


def test_texts_of_reads_strings_parts_prompt_and_input() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "a"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "b"}, {"type": "image_url", "image_url": {}}],
            },
            {"role": "assistant", "content": None},
            "junk",
        ],
        "prompt": "c",
        "input": ["d", 5],
    }
    assert texts_of(body) == ["a", "b", "c", "d"]


def test_catalog_content_policy_is_optional_and_validated(tmp_path: Path) -> None:
    base = "providers: [{id: local, kind: local}]\nmodels: []\n"
    path = tmp_path / "c.yaml"
    path.write_text(base)
    assert Catalog.load(path).config.content_policy is None
    path.write_text(base + "content_policy:\n  rules: [{id: r, pattern: 'x+', applies_to: sfw}]\n")
    policy = Catalog.load(path).config.content_policy
    assert policy is not None and policy.rules[0].applies_to == "sfw"
    path.write_text(base + "content_policy:\n  rules: [{id: r, pattern: '(unclosed'}]\n")
    with pytest.raises(CatalogError, match=r"content_policy\.rules\.0\.pattern"):
        Catalog.load(path)
    path.write_text(base + "content_policy:\n  rules: [{id: r, pattern: 'x', applies_to: kids}]\n")
    with pytest.raises(CatalogError, match="applies_to"):
        Catalog.load(path)


# -- web3 tokens ----------------------------------------------------------------------------------


def test_web3_token_round_trip_expiry_and_tampering() -> None:
    pepper = b"pepper"
    now = time.time()
    token = issue_token(pepper, now)
    assert verify_token(pepper, token, now + 10)
    for bad, at in (
        (token, now + 301),  # expired after 5 minutes
        (issue_token(b"other", now), now),  # another server's pepper
        (token[:-3] + "abc", now),
        ("not.a.token", now),
        ("nodots", now),
    ):
        with pytest.raises(TollwayError) as caught:
            verify_token(pepper, bad, at)
        assert caught.value.code is ErrorCode.AUTHENTICATION_FAILED


def test_web3_signature_recovery_and_addresses() -> None:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    wallet = Account.create()
    signature = wallet.sign_message(encode_defunct(text="tok")).signature.hex()
    assert recover_signer("tok", signature) == wallet.address.lower()
    assert recover_signer("tok", "0x" + signature.removeprefix("0x")) == wallet.address.lower()
    assert recover_signer("other", signature) != wallet.address.lower()
    with pytest.raises(TollwayError):
        recover_signer("tok", "0x1234")
    assert normalize_address(wallet.address) == wallet.address.lower()
    with pytest.raises(ValueError):
        normalize_address("0xZZ")


# -- key events (SQLite and PostgreSQL) -----------------------------------------------------------


async def test_key_events_on_mint_and_revoke(engine: AsyncEngine, accounts_service: Accounts) -> None:
    account = await accounts_service.create("events")
    keys = Keys(engine, b"pepper", "tw_", 5.0)
    admin = await keys.mint(account.id, KeySettings(scope="admin"))
    minted = await keys.mint(account.id, KeySettings(label="c"), actor=admin["id"])
    await keys.revoke(minted["id"], account_id=account.id, actor=admin["id"])
    events = await keys.events(account.id)
    assert [(e["key_id"], e["event"], e["actor"]) for e in events] == [
        (minted["id"], "revoked", admin["id"]),
        (minted["id"], "minted", admin["id"]),
        (admin["id"], "minted", "operator"),
    ]
    other = await accounts_service.create("other")
    assert await keys.events(other.id) == []
    with pytest.raises(TollwayError):
        await keys.get(admin["id"], other.id)
    assert (await keys.get(admin["id"], account.id))["scope"] == "admin"
