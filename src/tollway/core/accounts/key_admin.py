"""Editing and rotating keys, and what each key spent (issue 24).

An edit or a rotation evicts the key from every replica's auth cache by the revocation's path
(`Keys.publish_revoked`). A rotation gives the key a new secret, shown once; the old secret keeps
working until the grace period the caller chose ends (`previous_hash`, `previous_until`: authentication
caps the old secret's caller at that instant), then it is refused with 401. Rotating again ends the
grace of the secret before: only the latest old secret is remembered.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.core.access.keys import ConsumptionLimit, Keys, RateLimits, check_future, key_view, record_event
from tollway.core.catalog.privacy import ModelPrivacy
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import accounts, api_keys, usage, usage_daily

MAX_GRACE_SECONDS = 30 * 86_400


class KeyPatch(BaseModel):
    """What PATCH of a key may change; a field left out is left as it is, null clears it."""

    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=200)
    content_tier: Literal["sfw", "uncensored"] | None = None
    expires_at: datetime | None = None
    consumption_limit: ConsumptionLimit | None = None
    rate_limits: RateLimits | None = None
    model_privacy: ModelPrivacy | None = None  # null: ALL


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # How long the old secret keeps working, so deployed clients can switch: 0 ends it at once.
    grace_seconds: StrictInt = Field(ge=0, le=MAX_GRACE_SECONDS)


class KeyAdmin:
    def __init__(self, engine: AsyncEngine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    async def _active(self, key_id: str, account_id: str | None) -> Any:
        """The active key, with its account's tier settings; another tenant's key is 'not found'."""
        where = [api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)]
        if account_id is not None:
            where.append(api_keys.c.account_id == account_id)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys, accounts.c.age_verified, accounts.c.content_tiers)
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(*where)
                )
            ).first()
        if row is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No active key {key_id!r}.", param="id")
        return row

    async def edit(
        self, key_id: str, patch: KeyPatch, *, account_id: str | None, actor: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Apply `patch`: (the key as listed, the fields changed). Nothing changes on a refusal."""
        row = await self._active(key_id, account_id)
        fields = patch.model_fields_set
        values: dict[str, Any] = {}
        if "label" in fields:
            values["label"] = patch.label
        if "content_tier" in fields:
            tier = patch.content_tier or "sfw"
            _check_tier(tier, row)
            values["content_tier"] = tier
        if "expires_at" in fields:
            check_future(patch.expires_at, "expires_at")
            values["expires_at"] = as_utc(patch.expires_at) if patch.expires_at else None
        if "consumption_limit" in fields:
            limit = patch.consumption_limit
            values["consumption_limit_nano"] = usd_to_nano(limit.usd) if limit else None
            values["consumption_period"] = limit.period if limit else None
        if "model_privacy" in fields:
            values["model_privacy"] = patch.model_privacy or "ALL"
        if "rate_limits" in fields:
            limits = patch.rate_limits
            values["rate_limits"] = limits.model_dump(exclude_none=True) if limits else None
        if values:
            async with self._engine.begin() as conn:
                await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
                await record_event(conn, row.account_id, key_id, "edited", actor)
            await self._evict(key_id)
        return await self._view(key_id), sorted(fields)

    async def rotate(
        self, key_id: str, grace_seconds: int, *, account_id: str | None, actor: str
    ) -> dict[str, Any]:
        """A new secret for the key (returned as `key`, this once); the old one until the grace ends."""
        row = await self._active(key_id, account_id)
        raw = f"{self._keys.prefix}{secrets.token_urlsafe(32)}"  # as Keys mints them
        digest = self._keys.hash(raw)
        until = utcnow() + timedelta(seconds=grace_seconds)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(
                    key_hash=digest,
                    display_prefix=raw[: len(self._keys.prefix) + 4],
                    last6=raw[-6:],
                    previous_hash=row.key_hash if grace_seconds else None,
                    previous_until=until if grace_seconds else None,
                )
            )
            await record_event(conn, row.account_id, key_id, "rotated", actor)
        await self._evict(key_id)
        old_until = until.isoformat() if grace_seconds else None
        return {**await self._view(key_id), "key": raw, "previous_key_valid_until": old_until}

    async def _evict(self, key_id: str) -> None:
        self._keys.forget(key_id)
        if self._keys.publish_revoked is not None:
            await self._keys.publish_revoked(key_id)  # never raises; the cache TTL is the safety net

    async def _view(self, key_id: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        return key_view(row)


def _check_tier(tier: str, row: Any) -> None:
    if row.content_tiers is not None and tier not in row.content_tiers:
        raise TollwayError(
            ErrorCode.CONTENT_TIER_FORBIDDEN,
            f"This account may only have {'/'.join(row.content_tiers)} keys; the operator sets that.",
            param="content_tier",
        )
    if tier == "uncensored" and not row.age_verified:
        raise TollwayError(
            ErrorCode.AGE_VERIFICATION_REQUIRED,
            "Uncensored keys need an age-verified account; the operator sets age_verified.",
            param="content_tier",
        )


async def with_spend(
    engine: AsyncEngine, account_id: str, listed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each listed key with what it spent today and this month (UTC, from the daily rollup) and when it
    was last used: its newest usage row of the last 31 days, else the last UTC day the rollup has."""
    now = utcnow()
    today, month = now.date().isoformat(), now.date().replace(day=1).isoformat()
    d = usage_daily.c
    async with engine.connect() as conn:
        spent = (
            await conn.execute(
                select(
                    d.key_id,
                    func.sum(d.cost_nano).filter(d.day == today),
                    func.sum(d.cost_nano),
                )
                .where(d.account_id == account_id, d.day >= month)
                .group_by(d.key_id)
            )
        ).all()
        used = (
            await conn.execute(
                select(usage.c.key_id, func.max(usage.c.created_at))
                .where(usage.c.account_id == account_id, usage.c.created_at >= now - timedelta(days=31))
                .group_by(usage.c.key_id)
            )
        ).all()
        days = (
            await conn.execute(
                select(d.key_id, func.max(d.day)).where(d.account_id == account_id).group_by(d.key_id)
            )
        ).all()
    by_key = {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in spent}
    last = {r[0]: r[1] for r in days if r[1]}
    last.update({r[0]: as_utc(r[1]).isoformat() for r in used if r[1] is not None})
    return [
        {
            **key,
            "spend_today_usd": nano_to_usd(by_key.get(key["id"], (0, 0))[0]),
            "spend_month_usd": nano_to_usd(by_key.get(key["id"], (0, 0))[1]),
            "last_used_at": last.get(key["id"]),
        }
        for key in listed
    ]
