"""Rate-limit admission (pipeline step 6): which limits apply to a request, and the gate that admits
it against the Limiter (limits.py) and answers a refusal with OpenAI's headers.

Where limits come from, per dimension, first set wins: the key's own `rate_limits` → the account's
plan (seed 004's table, or `plans:` in the catalog YAML) → the model's own `rate_limits` → the model's
class (Venice's per-model table). A bucket is (key, model class): "per key and per model class".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tollway.base.config import RateLimitsConfig
from tollway.core.limits.limiter import FAILED_MESSAGE, FailedPolicy, Lease, Limiter, Limits
from tollway.errors import ErrorCode, TollwayError

if TYPE_CHECKING:
    from tollway.core.caller import Caller
    from tollway.core.catalog.catalog import CatalogModel

log = logging.getLogger("tollway.limits")


def _cfg(**values: int) -> RateLimitsConfig:
    return RateLimitsConfig.model_validate(values)


# Seed 004's plan table: RPM for chat and for images; everything else comes from the model class.
DEFAULT_PLANS: dict[str, dict[str, RateLimitsConfig]] = {
    "free": {"text": _cfg(rpm=10), "image": _cfg(rpm=5)},
    "standard": {"text": _cfg(rpm=60), "image": _cfg(rpm=20)},
    "pro": {"text": _cfg(rpm=300), "image": _cfg(rpm=60)},
}
# Venice's paid-tier table (seed-002 inventory §12.2), one row per class of model.
MODEL_CLASSES: dict[str, RateLimitsConfig] = {
    "llm-small": _cfg(rpm=500, rpd=288_000, tpm=1_000_000),  # llama-3.2-3b, qwen3-4b
    "llm-medium": _cfg(rpm=75, rpd=54_000, tpm=750_000),  # venice-uncensored, mistral-31-24b
    "llm-large": _cfg(rpm=50, rpd=36_000, tpm=750_000),  # llama-3.3-70b
    "llm-xl": _cfg(rpm=20, rpd=15_000, tpm=750_000),  # qwen3-235b
    "image": _cfg(rpm=20, rpd=28_800),
    "image-flux": _cfg(rpm=20, rpd=14_400),
    "audio": _cfg(rpm=60, rpd=86_400),
    "embedding": _cfg(rpm=500, rpd=288_000, tpm=1_000_000),  # text-embedding-bge-m3
    "crypto-rpc": _cfg(rpm=100),  # POST crypto/rpc/{network} (core/rpc/proxy.py): Venice's paid tier
}
CLASS_OF_TYPE = {
    "text": "llm-medium",
    "embedding": "embedding",
    "image": "image",
    "inpaint": "image",
    "upscale": "image",
    "video": "image",
    "tts": "audio",
    "stt": "audio",
    "music": "audio",
    "moderation": "embedding",
}


def model_class(model: CatalogModel) -> str:
    return model.config.rate_class or CLASS_OF_TYPE.get(model.type, "llm-medium")


def resolve_limits(
    key_limits: Mapping[str, int] | None,
    plan: RateLimitsConfig | None,
    model: CatalogModel,
) -> Limits:
    """Per dimension, the first source that sets it: key → plan → model → model class."""
    own = key_limits or {}
    # Read as attributes, not dumped: this runs on every call, and three model_dump()s were 3 % of a
    # call's CPU (bench/profile_hotpath.py).
    configs = [
        c for c in (plan, model.config.rate_limits, MODEL_CLASSES.get(model_class(model))) if c is not None
    ]
    values: dict[str, int | None] = {}
    for name in ("rpm", "rpd", "tpm", "concurrency"):
        value = own.get(name) or next((v for c in configs if (v := getattr(c, name))), None)
        values[name] = int(value) if value else None
    return Limits(**values)


def retry_headers(retry_after_us: float, transient: bool = True) -> dict[str, str]:
    """Retry-After (whole seconds, rounded up) and the finer retry-after-ms the openai SDKs honour."""
    ms = max(1, math.ceil(retry_after_us / 1000))
    headers = {"retry-after": str(max(1, math.ceil(ms / 1000))), "retry-after-ms": str(ms)}
    if not transient:
        headers["x-should-retry"] = "false"
    return headers


def blocked_error(retry_after_us: float, policy: FailedPolicy | None = None) -> TollwayError:
    """The 429 of a credential blocked by the failed-request limit (Venice's message at its numbers)."""
    message = FAILED_MESSAGE if policy is None else policy.message
    return TollwayError(ErrorCode.RATE_LIMITED, message, headers=retry_headers(retry_after_us))


@dataclass(slots=True)
class FailedCheck:
    """A request's failed-request block check, left by api/middleware.py to whichever comes first:

    - its admission (RateGate.admit), which asks the limiter in the same step as the rate limits, so
      a call costs no round trip of its own for the check;
    - work that must not run for a blocked credential before it (`check_failed_now`: an upstream
      moderation call);
    - its response's first byte, where the middleware asks, and a blocked request's answer becomes
      the 429 instead.

    Only routes whose first lasting effect is admission leave it (api/limits.py `admits_first`)."""

    subject: str
    limiter: Limiter
    pending: bool = True
    blocked: bool = False  # the check found the credential blocked

    def take(self, limiter: Limiter) -> str | None:
        """The subject to check now with `limiter`, once; None when it is done or not this limiter's."""
        if not self.pending or limiter is not self.limiter:
            return None
        self.pending = False
        return self.subject


FAILED_CHECK: ContextVar[FailedCheck | None] = ContextVar("tollway_failed_check", default=None)


async def check_failed_now() -> None:
    """Do the request's pending failed-request check now: 429 if its credential is blocked."""
    check = FAILED_CHECK.get()
    subject = check.take(check.limiter) if check is not None else None
    if check is None or subject is None:
        return
    blocked = await check.limiter.blocked_for(subject)
    if blocked > 0:
        check.blocked = True
        raise blocked_error(blocked, check.limiter.failed_policy)


# -- what the pipeline uses --------------------------------------------------------------------


@dataclass(slots=True)
class Ticket:
    """An admitted request's limiter state; `finish` is idempotent and safe in every exit path."""

    limiter: Limiter | None
    headers: dict[str, str] = field(default_factory=dict)
    lease: Lease | None = None

    async def finish(self, actual_tokens: int = 0) -> None:
        if self.limiter is None or self.lease is None or self.lease.done:
            return
        try:
            await self.limiter.finish(self.lease, actual_tokens)
        except Exception:
            # The slot has a TTL and the token debt decays: a failed release never locks a key out.
            log.warning("rate-limit release failed", exc_info=True)

    def finish_soon(self, actual_tokens: int = 0) -> None:
        if self.limiter is not None:
            self.limiter.release_soon(self.lease, actual_tokens)


class RateGate:
    """Resolves a caller's limits for a model and admits against the limiter (pipeline step 6)."""

    def __init__(self, limiter: Limiter, plans: Mapping[str, Mapping[str, RateLimitsConfig]]) -> None:
        self.limiter = limiter
        self.plans: dict[str, Mapping[str, RateLimitsConfig]] = {**DEFAULT_PLANS, **plans}

    def plan_limits(self, plan: str, model_type: str) -> RateLimitsConfig | None:
        table = self.plans.get(plan) or self.plans.get("standard") or {}
        return table.get(model_type) or table.get("default")

    def limits_for(self, caller: Caller, model: CatalogModel) -> Limits:
        return resolve_limits(caller.rate_limits, self.plan_limits(caller.plan, model.type), model)

    async def admit(self, caller: Caller, model: CatalogModel, tokens: int) -> Ticket:
        limits = self.limits_for(caller, model)
        bucket = f"{caller.key_id}:{model_class(model)}"
        check = FAILED_CHECK.get()
        subject = check.take(self.limiter) if check is not None else None
        verdict = await self.limiter.admit(bucket, limits, tokens, subject)
        headers = verdict.headers()
        if verdict.allowed:
            return Ticket(self.limiter, headers, verdict.lease)
        if verdict.limit_type == "BLOCKED":
            if check is not None:
                check.blocked = True
            raise blocked_error(verdict.retry_after_us, self.limiter.failed_policy)
        if caller.account_id is not None:
            await self._log(caller, model, verdict.limit_type or "RPM")
        raise TollwayError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit reached ({verdict.limit_type}) for {model.id!r} on this key. "
            "Retry after the time in the Retry-After header.",
            headers={**headers, **retry_headers(verdict.retry_after_us, verdict.transient)},
        )

    async def _log(self, caller: Caller, model: CatalogModel, limit_type: str) -> None:
        assert caller.account_id is not None
        event = {
            "apiKeyId": caller.key_id,
            "modelId": model.id,
            "rateLimitTier": caller.plan,
            "rateLimitType": limit_type,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        try:
            await self.limiter.log_event(caller.account_id, event)
        except Exception:
            log.warning("rate-limit log write failed", exc_info=True)
