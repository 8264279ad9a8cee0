"""Accounts as the operator manages them: search and page through them, edit them, suspend and resume.

An edit changes what a key's authentication answers (plan, age verification, suspension), so every edit
evicts the account's keys from the auth cache of every replica by the path a revocation takes
(`Keys.publish_revoked`, core/access/key_events_bus.py); without Redis, other replicas see it within
TOLLWAY_KEY_CACHE_SECONDS, as a revocation. A suspension is never cached: a suspended account's key
is refused (403 ACCOUNT_SUSPENDED) on every request until it is resumed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.access.accounts import Account, Accounts, account_of
from tollway.core.access.keys import KEY_CREATION_PER_MINUTE, Keys
from tollway.core.limits.gate import DEFAULT_PLANS, RateGate
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts, api_keys

Tier = Literal["sfw", "uncensored"]


class AccountLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Keys this account may create per minute (the operator's mints are exempt). Default 20.
    keys_per_minute: int = Field(default=KEY_CREATION_PER_MINUTE, ge=1, le=100_000)


class AccountPatch(BaseModel):
    """What PATCH /v1/admin/accounts/{id} may change; a field left out is left as it is."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: str | None = Field(default=None, min_length=1, max_length=40)
    content_tiers: list[Tier] | None = Field(default=None, min_length=1, max_length=2)
    age_verified: StrictBool | None = None
    suspended: StrictBool | None = None
    limits: AccountLimits | None = None


def known_plans(gate: RateGate | None) -> Collection[str]:
    """The plans an account may be given: the catalog's `plans:` and seed 004's defaults."""
    return gate.plans if gate is not None else DEFAULT_PLANS


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AccountDirectory:
    def __init__(self, engine: AsyncEngine, accounts_: Accounts, keys: Keys) -> None:
        self._engine = engine
        self._accounts = accounts_
        self._keys = keys

    async def page(
        self, *, query: str | None = None, after: str | None = None, limit: int = 50
    ) -> tuple[list[Account], str | None]:
        """Accounts in id order, `query` matching the id exactly or the name in part (any case);
        `after` is the cursor (the last id of the previous page). Returns the page and the next cursor."""
        statement = select(accounts).order_by(accounts.c.id).limit(limit + 1)
        if query:
            pattern = f"%{_escape_like(query.lower())}%"
            statement = statement.where(
                or_(accounts.c.id == query, func.lower(accounts.c.name).like(pattern, escape="\\"))
            )
        if after:
            statement = statement.where(accounts.c.id > after)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        page = [account_of(r) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    async def edit(self, account_id: str, patch: AccountPatch, plans: Collection[str]) -> dict[str, Any]:
        """Apply `patch`; returns the changes made ({field: new value}). Nothing changes on a refusal."""
        current = await self._accounts.get(account_id)
        changes = patch.model_dump(exclude_unset=True)
        if "plan" in changes and changes["plan"] not in plans:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"Unknown plan {changes['plan']!r}; the plans are {', '.join(sorted(plans))}.",
                param="plan",
            )
        if changes.get("content_tiers") is not None:
            changes["content_tiers"] = sorted(set(changes["content_tiers"]))
            await self._check_tiers(account_id, changes["content_tiers"])
        if current.limits is not None and "limits" in changes:
            changes["limits"] = {**current.limits, **changes["limits"]}
        for name in [n for n, v in changes.items() if v is None]:
            if name != "content_tiers":  # content_tiers: null means every tier again
                del changes[name]
        if changes:
            async with self._engine.begin() as conn:
                await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**changes))
            await self.evict(account_id)
        return changes

    async def _check_tiers(self, account_id: str, tiers: list[str]) -> None:
        """Refuse to take a tier away from an account whose active keys have it: edit or revoke them first."""
        async with self._engine.connect() as conn:
            in_use = (
                await conn.execute(
                    select(func.count())
                    .select_from(api_keys)
                    .where(
                        api_keys.c.account_id == account_id,
                        api_keys.c.revoked_at.is_(None),
                        api_keys.c.content_tier.not_in(tiers),
                    )
                )
            ).scalar_one()
        if in_use:
            raise TollwayError(
                ErrorCode.VALIDATION,
                f"{in_use} active key(s) of this account have a tier not in {tiers}: change their tier "
                "(PATCH /v1/admin/keys/{id}) or revoke them first.",
                param="content_tiers",
            )

    async def evict(self, account_id: str) -> None:
        """Every replica drops this account's keys from its auth cache: the next request reads them anew."""
        async with self._engine.connect() as conn:
            key_ids = (
                (await conn.execute(select(api_keys.c.id).where(api_keys.c.account_id == account_id)))
                .scalars()
                .all()
            )
        for key_id in key_ids:
            self._keys.forget(key_id)
            if self._keys.publish_revoked is not None:
                await self._keys.publish_revoked(key_id)  # never raises; the cache TTL is the safety net
