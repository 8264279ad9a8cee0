"""API keys: minting, hashing, authentication, scopes and per-key settings (DESIGN §8, §9).

A key is shown once. Only HMAC-SHA256(pepper, key) is stored; lookups are by that hash, so a
database leak gives no usable key. Authentication is cached for a few seconds per process; a
revocation in this process evicts at once.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.base.ids import new_id
from tollway.core.caller import Caller, KeyLimit
from tollway.core.catalog.privacy import ModelPrivacy
from tollway.core.limits.gate import retry_headers
from tollway.core.limits.limiter import Limiter
from tollway.core.money.amounts import PositiveUsdAmount
from tollway.core.money.prices import nano_to_usd, usd_to_nano
from tollway.errors import ErrorCode, TollwayError
from tollway.store.server_state import write_once
from tollway.store.tables import accounts, api_keys, key_events, server_state

OPERATOR_HASH = "operator_key_hash"


KEY_CREATION_PER_MINUTE = 20
MAX_ACTIVE_KEYS = 500


class ConsumptionLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd: PositiveUsdAmount  # core/money/amounts.py: the one rule for amounts a client sends
    period: Literal["day", "week", "month", "total"] = "total"


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    # The failed-request limit for this key: more than this many failed requests in the window block
    # it (TOLLWAY_FAILED_REQUEST_*); 0 turns the limit off for this key. Unset: the operator's.
    failed_requests: int | None = Field(default=None, ge=0, le=100_000)


class KeySettings(BaseModel):
    """The per-key settings every minting route accepts (DESIGN §9)."""

    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=200)
    scope: Literal["admin", "inference"] = "inference"
    content_tier: Literal["sfw", "uncensored"] = "sfw"
    expires_at: datetime | None = None
    consumption_limit: ConsumptionLimit | None = None
    rate_limits: RateLimits | None = None
    model_privacy: ModelPrivacy = "ALL"  # Venice's modelPrivacy: the models it may call (catalog/privacy.py)


def check_future(expires_at: datetime | None, param: str) -> None:
    """A new key's expiry must lie ahead: 400 naming `param` otherwise."""
    if expires_at is not None and as_utc(expires_at) <= utcnow():
        raise TollwayError(ErrorCode.VALIDATION, f"`{param}` must be in the future.", param=param)


def key_view(row: Any) -> dict[str, Any]:
    """A key as listed: never the secret, only its prefix and last characters."""
    limit = None
    if row.consumption_limit_nano is not None:
        limit = {"usd": nano_to_usd(row.consumption_limit_nano), "period": row.consumption_period}
    return {
        "id": row.id,
        "object": "api_key",
        "account_id": row.account_id,
        "label": row.label,
        "scope": row.scope,
        "content_tier": row.content_tier,
        "model_privacy": row.model_privacy,
        "display": f"{row.display_prefix}…{row.last6}",
        "last6Chars": row.last6,
        "consumption_limit": limit,
        "rate_limits": row.rate_limits,
        "expires_at": row.expires_at and as_utc(row.expires_at).isoformat(),
        "revoked": row.revoked_at is not None,
        "created_at": as_utc(row.created_at).isoformat(),
    }


class Keys:
    def __init__(
        self,
        engine: AsyncEngine,
        pepper: bytes,
        prefix: str,
        cache_seconds: float,
        operator_key: str | None = None,
    ) -> None:
        self._engine = engine
        self._pepper = pepper
        self.prefix = prefix
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._operator_env_hash = self.hash(operator_key) if operator_key else None
        self._operator_hash: str | None = None
        self.limiter: Limiter | None = None  # set by services: key-creation limits
        # Set by the app when Redis is configured: tells every replica to evict (core/access/key_events_bus.py).
        self.publish_revoked: Callable[[str], Awaitable[None]] | None = None

    def hash(self, raw: str) -> str:
        return hmac.new(self._pepper, raw.encode(), hashlib.sha256).hexdigest()

    def _new_secret(self) -> str:
        return f"{self.prefix}{secrets.token_urlsafe(32)}"

    # -- operator -----------------------------------------------------------------------------

    async def ensure_operator_key(self) -> str | None:
        """Create the operator key if there is none. Returns it the one time it is created.

        Safe when processes start together on a new database: exactly one of them creates it."""
        raw = self._new_secret()
        digest = self.hash(raw)
        stored = await write_once(self._engine, OPERATOR_HASH, digest)
        return raw if hmac.compare_digest(stored, digest) else None

    async def _operator_key_hash(self) -> str | None:
        if self._operator_hash is None:
            async with self._engine.connect() as conn:
                self._operator_hash = (
                    await conn.execute(
                        select(server_state.c.value).where(server_state.c.name == OPERATOR_HASH)
                    )
                ).scalar()
        return self._operator_hash

    # -- authentication -----------------------------------------------------------------------

    async def authenticate(self, raw: str | None) -> Caller:
        """The caller of a raw key; any problem is the same 401, with no hint of which."""
        if not raw or len(raw) > 256:
            raise TollwayError(ErrorCode.AUTHENTICATION_FAILED)
        digest = self.hash(raw)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            caller = cached[1]
        else:
            caller = await self._load_caller(digest)
            self._cache[digest] = (now + self._cache_seconds, caller)
        if caller.expires_at is not None and caller.expires_at <= utcnow():
            raise TollwayError(ErrorCode.AUTHENTICATION_FAILED)
        return caller

    async def _load_caller(self, digest: str) -> Caller:
        if self._operator_env_hash is not None and hmac.compare_digest(digest, self._operator_env_hash):
            return Caller(scope="operator")
        stored_operator = await self._operator_key_hash()
        if stored_operator is not None and hmac.compare_digest(digest, stored_operator):
            return Caller(scope="operator")
        # A rotated key's old secret answers until its grace period ends (core/accounts/key_admin.py).
        rotated = and_(api_keys.c.previous_hash == digest, api_keys.c.previous_until > utcnow())
        return await self._key_caller(or_(api_keys.c.key_hash == digest, rotated), digest)

    async def caller_of(self, key_id: str) -> Caller:
        """The caller of a key by its id, as of now (a batch runs its lines as the key that made it):
        401 when it was revoked or expired since."""
        caller = await self._key_caller(api_keys.c.id == key_id)
        if caller.expires_at is not None and caller.expires_at <= utcnow():
            raise TollwayError(ErrorCode.AUTHENTICATION_FAILED)
        return caller

    async def _key_caller(self, where: Any, digest: str | None = None) -> Caller:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys, accounts.c.age_verified, accounts.c.plan, accounts.c.suspended)
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(where)
                )
            ).first()
        if row is None or row.revoked_at is not None:
            raise TollwayError(ErrorCode.AUTHENTICATION_FAILED)
        if row.suspended:  # never cached: a resumed account's keys work on their next request
            raise TollwayError(ErrorCode.ACCOUNT_SUSPENDED)
        expires_at = as_utc(row.expires_at) if row.expires_at else None
        if digest is not None and row.key_hash != digest:  # the old secret: its grace ends it
            grace = as_utc(row.previous_until)
            expires_at = grace if expires_at is None else min(expires_at, grace)
        key_limit = None
        if row.consumption_limit_nano is not None:
            key_limit = KeyLimit(row.id, row.consumption_limit_nano, row.consumption_period or "total")
        return Caller(
            scope=row.scope,
            key_id=row.id,
            account_id=row.account_id,
            label=row.label,
            content_tier=row.content_tier,
            age_verified=row.age_verified,
            key_limit=key_limit,
            rate_limits=row.rate_limits,
            expires_at=expires_at,
            plan=row.plan,
            model_privacy=row.model_privacy,
        )

    # -- management ---------------------------------------------------------------------------

    async def mint(
        self, account_id: str, settings: KeySettings, *, actor: str = "operator"
    ) -> dict[str, Any]:
        """Create a key. The response carries the secret as `key`, this one time only."""
        async with self._engine.connect() as conn:
            account = (
                await conn.execute(
                    select(accounts.c.age_verified, accounts.c.limits, accounts.c.content_tiers).where(
                        accounts.c.id == account_id
                    )
                )
            ).first()
        if account is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No account {account_id!r}.")
        per_minute = (account.limits or {}).get("keys_per_minute", KEY_CREATION_PER_MINUTE)
        # The account's keys per minute (the operator's mints are exempt), and 500 active keys.
        await check_key_creation(
            self.limiter, self._engine, account_id, None if actor == "operator" else per_minute
        )
        if settings.content_tier == "uncensored" and not account.age_verified:
            raise TollwayError(
                ErrorCode.AGE_VERIFICATION_REQUIRED,
                "Uncensored keys need an age-verified account; the operator sets age_verified.",
                param="content_tier",
            )
        if account.content_tiers is not None and settings.content_tier not in account.content_tiers:
            raise TollwayError(
                ErrorCode.CONTENT_TIER_FORBIDDEN,
                f"This account may only have {'/'.join(account.content_tiers)} keys; the operator sets that.",
                param="content_tier",
            )
        raw = self._new_secret()
        limit = settings.consumption_limit
        values = {
            "id": new_id("key"),
            "account_id": account_id,
            "key_hash": self.hash(raw),
            "display_prefix": raw[: len(self.prefix) + 4],
            "last6": raw[-6:],
            "label": settings.label,
            "scope": settings.scope,
            "content_tier": settings.content_tier,
            "model_privacy": settings.model_privacy,
            "consumption_limit_nano": usd_to_nano(limit.usd) if limit else None,
            "consumption_period": limit.period if limit else None,
            "rate_limits": settings.rate_limits.model_dump(exclude_none=True)
            if settings.rate_limits
            else None,
            "expires_at": as_utc(settings.expires_at) if settings.expires_at else None,
            "revoked_at": None,
            "created_at": utcnow(),
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(api_keys).values(**values))
            await record_event(conn, account_id, str(values["id"]), "minted", actor)
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == values["id"]))).one()
        return {**key_view(row), "key": raw}

    async def list(self, account_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(api_keys)
                    .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
                    .order_by(api_keys.c.created_at)
                )
            ).all()
        return [key_view(r) for r in rows]

    async def revoke(
        self, key_id: str, *, account_id: str | None = None, actor: str = "operator"
    ) -> dict[str, Any]:
        """Revoke at once. `account_id` scopes it to one tenant: another tenant's key is 'not found'."""
        condition = [api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)]
        if account_id is not None:
            condition.append(api_keys.c.account_id == account_id)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(api_keys).where(*condition).values(revoked_at=utcnow()).returning(api_keys)
                )
            ).first()
            if row is not None:
                await record_event(conn, row.account_id, key_id, "revoked", actor)
        if row is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No active key {key_id!r}.", param="id")
        self.forget(key_id)
        if self.publish_revoked is not None:
            await self.publish_revoked(key_id)  # never raises; the cache TTL is the safety net
        return key_view(row)

    def forget(self, key_id: str) -> None:
        """Evict one key from this process's auth cache (a revocation here or on another replica)."""
        self._cache = {h: c for h, c in self._cache.items() if c[1].key_id != key_id}

    def forget_all(self) -> None:
        self._cache = {}

    async def get(self, key_id: str, account_id: str) -> dict[str, Any]:
        """One active key of one account; another tenant's key is 'not found', never data."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(
                        api_keys.c.id == key_id,
                        api_keys.c.account_id == account_id,
                        api_keys.c.revoked_at.is_(None),
                    )
                )
            ).first()
        if row is None:
            raise TollwayError(ErrorCode.NOT_FOUND, f"No active key {key_id!r}.", param="id")
        return key_view(row)

    async def events(self, account_id: str, limit: int = 200) -> builtins.list[dict[str, Any]]:
        """The account's key events, newest first: who did what to which key id (never a secret)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(key_events)
                    .where(key_events.c.account_id == account_id)
                    .order_by(key_events.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [
            {
                "object": "key_event",
                "key_id": r.key_id,
                "event": r.event,
                "actor": r.actor,
                "created_at": as_utc(r.created_at).isoformat(),
            }
            for r in rows
        ]


async def record_event(conn: AsyncConnection, account_id: str, key_id: str, event: str, actor: str) -> None:
    """Append one audit row in the caller's transaction."""
    await conn.execute(
        insert(key_events).values(
            account_id=account_id, key_id=key_id, event=event, actor=actor, created_at=utcnow()
        )
    )


async def check_key_creation(
    limiter: Limiter | None, engine: AsyncEngine, account_id: str, per_minute: int | None
) -> None:
    """Venice's key-creation limits: `per_minute` mints (the account's setting, 20 unless the operator
    changed it; None: not limited) and 500 active keys per account.

    The active count is read, not reserved: two mints racing at 499 can both pass. The cap stops
    runaway scripts, not a precise quota, so a read is enough here.
    """
    if limiter is None:
        return
    allowed, retry = (
        (True, 0.0) if per_minute is None else await limiter.hit(f"keys:{account_id}", per_minute, 60)
    )
    if not allowed:
        raise TollwayError(
            ErrorCode.RATE_LIMITED,
            f"At most {per_minute} keys may be created per minute on this account; the operator can "
            "raise it (PATCH /v1/admin/accounts/{id}, limits.keys_per_minute).",
            headers=retry_headers(retry),
        )
    async with engine.connect() as conn:
        active = (
            await conn.execute(
                select(func.count())
                .select_from(api_keys)
                .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
            )
        ).scalar_one()
    if active >= MAX_ACTIVE_KEYS:
        raise TollwayError(
            ErrorCode.RATE_LIMITED,
            f"This account has {MAX_ACTIVE_KEYS} active keys, the most allowed. Revoke one first.",
            headers={"x-should-retry": "false"},
        )
