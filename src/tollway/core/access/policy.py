"""Content policy: a pluggable check of the input before any upstream call (DESIGN §3 step 5).

Two sources, both configured by the operator in the catalog YAML under `content_policy:`:

- built-in rules: regular expressions, each with an id, optional categories and `applies_to`
  (`all` keys, or only `sfw` keys);
- an optional moderation model: any OpenAI-compatible `POST /moderations` endpoint.

Categories listed in `prohibited_categories` are blocked for every tier: a rule or a moderation
category in that list applies to uncensored keys too. A match is 422 `CONTENT_BLOCKED`, raised
before the reservation, so it costs nothing. The matched text is never logged: only the rule id.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import httpx2

from tollway.base import tokens
from tollway.base.config import ContentPolicyConfig, ModerationConfig, PolicyRule
from tollway.core.catalog import privacy
from tollway.core.limits.gate import check_failed_now
from tollway.errors import ErrorCode, TollwayError

if TYPE_CHECKING:
    from tollway.core.caller import Caller
    from tollway.core.catalog.catalog import Catalog, CatalogModel

log = logging.getLogger("tollway.policy")


class Moderator(Protocol):
    async def flagged(self, texts: list[str]) -> set[str]:
        """The categories the moderation model flags in any of `texts`."""
        ...


class OpenAIModerator:
    """`POST {base_url}/moderations` with `{"model", "input": [...]}` (OpenAI's shape)."""

    def __init__(self, config: ModerationConfig) -> None:
        headers = {"content-type": "application/json"}
        secret = os.environ.get(config.api_key_env) if config.api_key_env else None
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        self._model = config.model
        self._client = httpx2.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx2.Timeout(config.timeout_seconds, connect=5.0),
        )

    async def flagged(self, texts: list[str]) -> set[str]:
        response = await self._client.post("/moderations", json={"model": self._model, "input": texts})
        response.raise_for_status()
        found: set[str] = set()
        for result in response.json().get("results") or ():
            found.update(name for name, hit in (result.get("categories") or {}).items() if hit is True)
        return found


def texts_of(body: dict[str, Any]) -> list[str]:
    """Every piece of text a client sent: messages (as the tokenizer sees them), prompt, input."""
    messages = body.get("messages")
    texts, _ = tokens.message_texts(messages if isinstance(messages, list) else [])
    for name in ("prompt", "input"):
        value = body.get(name)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
    return texts


def _blocked(rule_id: str, categories: Iterable[str]) -> TollwayError:
    # Only the rule id is logged or returned: never the text that matched.
    log.info("content blocked", extra={"rule": rule_id})
    return TollwayError(
        ErrorCode.CONTENT_BLOCKED,
        f"Blocked by content policy (rule {rule_id!r}).",
        param="messages",
        extra={"rule": rule_id, "categories": sorted(categories)},
    )


class ContentPolicy:
    def __init__(self, config: ContentPolicyConfig, moderator: Moderator | None = None) -> None:
        self.config = config
        self._prohibited = set(config.prohibited_categories)
        self._rules = [
            (rule, re.compile(rule.pattern, re.IGNORECASE if rule.ignore_case else 0))
            for rule in config.rules
        ]
        self._moderator = moderator
        if moderator is None and config.moderation is not None:
            self._moderator = OpenAIModerator(config.moderation)

    def _applies(self, rule: PolicyRule, content_tier: str) -> bool:
        return (
            rule.applies_to == "all" or content_tier == "sfw" or bool(self._prohibited & set(rule.categories))
        )

    async def check(self, content_tier: str, texts: list[str]) -> None:
        """Raise 422 CONTENT_BLOCKED if any text is blocked for a key of this tier."""
        for rule, regex in self._rules:
            if self._applies(rule, content_tier) and any(regex.search(t) for t in texts):
                raise _blocked(rule.id, rule.categories)
        if self._moderator is None or not texts:
            return
        await check_failed_now()  # a blocked key's call must not reach the moderation model either
        try:
            flagged = await self._moderator.flagged(texts)
        except Exception as exc:
            moderation = self.config.moderation
            if moderation is not None and moderation.fail_open:
                log.warning(
                    "moderation failed; request allowed (fail_open)", extra={"error": type(exc).__name__}
                )
                return
            raise TollwayError(
                ErrorCode.SERVICE_UNAVAILABLE, "The content moderation service is unavailable. Retry later."
            ) from None
        blocking = flagged & self._prohibited
        if content_tier == "sfw":
            wanted = self.config.moderation.categories if self.config.moderation else None
            blocking |= flagged if wanted is None else flagged & set(wanted)
        if blocking:
            raise _blocked("moderation", blocking)


_POLICIES: weakref.WeakKeyDictionary[Catalog, ContentPolicy] = weakref.WeakKeyDictionary()


def policy_for(catalog: Catalog) -> ContentPolicy | None:
    """The catalog's policy, built once per catalog; None when the catalog configures none."""
    config = catalog.config.content_policy
    if config is None:
        return None
    policy = _POLICIES.get(catalog)
    if policy is None:
        policy = _POLICIES[catalog] = ContentPolicy(config)
    return policy


async def enforce(
    catalog: Catalog, caller: Caller, body: dict[str, Any], model: CatalogModel | None = None
) -> None:
    """The pipeline's one call: check the input of a request before any reservation or upstream call.
    With `model`, the key's modelPrivacy first: a moderation endpoint must not see a prompt the key
    may not send to that model (core/catalog/privacy.py)."""
    if model is not None:
        privacy.check(caller, model)
    policy = policy_for(catalog)
    if policy is not None:
        await policy.check(caller.content_tier, texts_of(body))
