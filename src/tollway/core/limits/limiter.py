"""Rate limits (DESIGN §5): one Limiter interface, an in-process backend here, Redis in redis.py.

The algorithm is GCRA (a token bucket stored as one number, the "theoretical arrival time"): each
admitted unit pushes the TAT forward by period/limit; a request is admitted while TAT − now stays
within the period. No fixed windows (bursts at the edges) and no per-request logs (memory grows
with traffic). Requests per minute, per day, tokens per minute and the in-flight count are checked
together and committed only if all pass, so a refused request costs nothing. An admission may also
check a credential's failed-request block (`subject`) in the same step: refused while blocked, it
commits nothing either (gate.FailedCheck says why the check is left to admission).

Which limits apply to a request, and its admission, are gate.py's.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
# (name in headers/logs, period) of the three GCRA dimensions, in the order every backend uses.
DIMENSIONS: tuple[tuple[str, int], ...] = (("RPM", MINUTE_US), ("RPD", DAY_US), ("TPM", MINUTE_US))
# Float rounding of period/limit must never refuse the limit-th request of a burst.
TOLERANCE_US = 1.0

# Venice Rate Limits page, verbatim (seed-002-venice-docs.txt "Failed Request Rate Limits").
FAILED_MESSAGE = (
    "Too many failed attempts (> 20) resulting in a non-success status code. Please wait 30s and try "
    "again. See https://docs.venice.ai/api-reference/rate-limiting for more information."
)
FAILED_LIMIT = 20
FAILED_WINDOW_SECONDS = 30


@dataclass(frozen=True, slots=True)
class FailedPolicy:
    """The failed-request limit: more than `limit` counted failures within `window_seconds` block the
    credential for `block_seconds` (TOLLWAY_FAILED_REQUEST_*; a key's `rate_limits.failed_requests`
    replaces `limit` for that key, 0 turning it off)."""

    limit: int = FAILED_LIMIT
    window_seconds: int = FAILED_WINDOW_SECONDS
    block_seconds: int = FAILED_WINDOW_SECONDS

    @property
    def message(self) -> str:
        """Venice's words at Venice's numbers; the same sentence with the operator's otherwise."""
        if self == FailedPolicy():
            return FAILED_MESSAGE
        return (
            f"Too many failed attempts (> {self.limit} in {self.window_seconds}s) resulting in a non-success "
            f"status code. Please wait {self.block_seconds}s and try again."
        )


EVENT_LOG_SIZE = 50


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def gcra(self) -> tuple[int, int, int]:
        """(rpm, rpd, tpm) with 0 for "no limit": the argument order of every backend."""
        return (self.rpm or 0, self.rpd or 0, self.tpm or 0)


def format_duration(us: float) -> str:
    """OpenAI's reset format: "12ms" under a second, else Go-style "6s", "1m30s", "2h0m0s"."""
    ms = max(0, math.ceil(us / 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


# -- results -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Lease:
    """What admission holds until the request ends: the token estimate and the in-flight slot."""

    bucket: str
    tokens: int  # the token cost admitted (estimate, capped at the limit)
    tpm: int
    slot: str | None  # in-flight slot id, when a concurrency limit applies
    done: bool = False


@dataclass(slots=True)
class Verdict:
    allowed: bool
    # (limit, remaining, reset µs) per GCRA dimension that has a limit; None when it has none.
    state: tuple[tuple[int, int, float] | None, ...]
    retry_after_us: float = 0.0
    limit_type: str | None = None  # RPM | RPD | TPM | CONCURRENCY | BLOCKED (the failed-request block)
    lease: Lease | None = None

    @property
    def transient(self) -> bool:
        # A daily cap will not clear within any sensible retry loop: tell SDKs not to retry.
        return self.limit_type != "RPD"

    def headers(self) -> dict[str, str]:
        """OpenAI's six headers. Requests: whichever of per-minute/per-day has less left."""
        out: dict[str, str] = {}
        requests = [s for s in self.state[:2] if s is not None]
        if requests:
            limit, remaining, reset = min(requests, key=lambda s: s[1])
            out["x-ratelimit-limit-requests"] = str(limit)
            out["x-ratelimit-remaining-requests"] = str(remaining)
            out["x-ratelimit-reset-requests"] = format_duration(reset)
        tokens = self.state[2] if len(self.state) > 2 else None
        if tokens is not None:
            out["x-ratelimit-limit-tokens"] = str(tokens[0])
            out["x-ratelimit-remaining-tokens"] = str(tokens[1])
            out["x-ratelimit-reset-tokens"] = format_duration(tokens[2])
        return out


def open_verdict() -> Verdict:
    """Admission without limiting (no limits apply, or the backend is down in `open` mode)."""
    return Verdict(True, (None, None, None))


def blocked_verdict(retry_after_us: float) -> Verdict:
    """Refused by the credential's failed-request block: no limit was looked at, none is reported."""
    return Verdict(False, (None, None, None), retry_after_us, "BLOCKED")


def gcra_step(
    tat: float | None, now: float, period: int, limit: int, cost: int
) -> tuple[bool, float, tuple[int, float], tuple[int, float], float]:
    """One GCRA check: (allowed, TAT if committed, (remaining, reset µs) if committed, the same as
    things stand, retry µs). A refused request reports things as they stand. Lua mirrors this."""
    interval = period / limit
    base = now if tat is None or tat < now else tat
    new = base + cost * interval
    excess = new - now - period
    current = (max(0, math.floor((period - (base - now)) / interval + 1e-9)), base - now)
    committed = (max(0, math.floor((period - (new - now)) / interval + 1e-9)), new - now)
    if excess > TOLERANCE_US:
        return False, base, current, current, excess
    return True, new, committed, current, 0.0


# -- the interface -----------------------------------------------------------------------------


class Limiter(ABC):
    """A shared-state store for every limit Tollway enforces. All methods are atomic per bucket."""

    failed_policy: FailedPolicy = FailedPolicy()  # the operator's (runtime/services.py)

    @abstractmethod
    async def admit(self, bucket: str, limits: Limits, tokens: int, subject: str | None = None) -> Verdict:
        """Admit one request costing `tokens` against every limit at once, or none of them.

        With `subject`, a failed-request block of that subject refuses it first (BLOCKED, retry =
        the block's time left), in the same atomic step."""

    @abstractmethod
    async def finish(self, lease: Lease, actual_tokens: int) -> None:
        """Correct the token estimate with the actual count and free the in-flight slot.

        In process at once; on Redis this process's next admission sees it, and other processes
        within a few milliseconds (redis.py: finishes are sent in batches)."""

    @abstractmethod
    async def renew(self) -> int:
        """Push back the expiry of every in-flight slot this process holds; returns how many.

        Slots are leases like holds (core/money/ledger.py): renewed while their calls live, so a
        crashed replica's slots free themselves `slot_seconds` after it stopped renewing."""

    @abstractmethod
    async def hit(self, bucket: str, limit: int, period_seconds: int) -> tuple[bool, float]:
        """A plain GCRA hit (key creation): (allowed, retry µs)."""

    @abstractmethod
    async def record_failure(self, subject: str, limit: int | None = None) -> None:
        """Count one non-2xx response; past the limit (`limit`, else the policy's), block the subject."""

    @abstractmethod
    async def blocked_for(self, subject: str) -> float:
        """µs left of a failed-request block, 0 when not blocked."""

    async def failed_check(self, subject: str, failed: bool, limit: int | None = None) -> float:
        """A response whose request was not checked against the block yet: the µs left of the block
        that refuses it (then nothing is counted), else 0, once a `failed` response is counted."""
        blocked = await self.blocked_for(subject)
        if blocked > 0:
            return blocked
        if failed:
            await self.record_failure(subject, limit)
        return 0.0

    @abstractmethod
    async def log_event(self, account_id: str, event: dict[str, Any]) -> None:
        """Remember a rate-limited request (metadata only); the newest EVENT_LOG_SIZE are kept."""

    @abstractmethod
    async def events(self, account_id: str) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None:
        return None

    def release_soon(self, lease: Lease | None, actual_tokens: int = 0) -> None:
        """Finish a lease from a path that may be cancelled: the release runs in its own task."""
        if lease is None or lease.done:
            return
        task = asyncio.get_running_loop().create_task(self.finish(lease, actual_tokens))
        _pending.add(task)
        task.add_done_callback(_pending.discard)


_pending: set[asyncio.Task[None]] = set()


class MemoryLimiter(Limiter):
    """Single-process backend. Each method runs without an await, so the event loop makes it atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, slot_seconds: float = 30.0) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}  # bucket → slot id → expiry (µs)
        self._blocks: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}
        self._events: dict[str, deque[dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._slot_us = slot_seconds * 1e6

    def _now(self) -> float:
        return self._clock() * 1e6

    async def admit(self, bucket: str, limits: Limits, tokens: int, subject: str | None = None) -> Verdict:
        if subject is not None and (blocked := await self.blocked_for(subject)) > 0:
            return blocked_verdict(blocked)
        now = self._now()
        state: list[tuple[int, int, float] | None] = []  # as if admitted
        current: list[tuple[int, int, float] | None] = []  # as things stand, reported on refusal
        commits: list[tuple[str, float]] = []
        refused: list[tuple[float, str]] = []
        tpm = limits.tpm or 0
        for (name, period), limit in zip(DIMENSIONS, limits.gcra(), strict=True):
            if not limit:
                state.append(None)
                current.append(None)
                continue
            key = f"{bucket}:{name}"
            cost = min(max(tokens, 0), limit) if name == "TPM" else 1
            allowed, tat, after, before, retry = gcra_step(self._tats.get(key), now, period, limit, cost)
            state.append((limit, *after))
            current.append((limit, *before))
            if allowed:
                commits.append((key, tat))
            else:
                refused.append((retry, name))
        slots = self._slots.setdefault(bucket, {})
        if limits.concurrency:
            for held, expiry in list(slots.items()):
                if expiry <= now:  # a crashed request must not hold its slot forever
                    del slots[held]
            if len(slots) >= limits.concurrency:
                refused.append((1e6, "CONCURRENCY"))
        if refused:
            retry, name = max(refused)
            return Verdict(False, tuple(current), retry, name)
        for key, tat in commits:
            self._tats[key] = tat
        slot: str | None = None
        if limits.concurrency:
            slot = str(next(self._ids))
            slots[slot] = now + self._slot_us
        cost = min(max(tokens, 0), tpm) if tpm else 0
        return Verdict(True, tuple(state), lease=Lease(bucket, cost, tpm, slot))

    async def finish(self, lease: Lease, actual_tokens: int) -> None:
        if lease.done:
            return
        lease.done = True
        if lease.slot is not None:
            self._slots.get(lease.bucket, {}).pop(lease.slot, None)
        if lease.tpm:
            key = f"{lease.bucket}:TPM"
            if key in self._tats:
                self._tats[key] += (actual_tokens - lease.tokens) * MINUTE_US / lease.tpm

    async def renew(self) -> int:
        expiry = self._now() + self._slot_us
        renewed = 0
        for slots in self._slots.values():
            for slot in slots:
                slots[slot] = expiry
                renewed += 1
        return renewed

    async def hit(self, bucket: str, limit: int, period_seconds: int) -> tuple[bool, float]:
        now = self._now()
        allowed, tat, _, _, retry = gcra_step(
            self._tats.get(bucket), now, period_seconds * 1_000_000, limit, 1
        )
        if allowed:
            self._tats[bucket] = tat
        return allowed, retry

    async def record_failure(self, subject: str, limit: int | None = None) -> None:
        # Venice's rule is an exact count ("> 20 in 30 s"), which GCRA only approximates (it
        # refills while the failures arrive). The last limit + 1 failure times decide it exactly,
        # a bounded ring, not a growing log.
        policy = self.failed_policy
        limit = policy.limit if limit is None else limit
        now = self._now()
        ring = self._failures.get(subject)
        if ring is None or ring.maxlen != limit + 1:
            ring = self._failures[subject] = deque(ring or (), maxlen=limit + 1)
        ring.append(now)
        window = policy.window_seconds * 1e6
        if len(ring) > limit and now - ring[0] <= window and self._blocks.get(subject, 0) <= now:
            self._blocks[subject] = now + policy.block_seconds * 1e6

    async def blocked_for(self, subject: str) -> float:
        until = self._blocks.get(subject)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._blocks[subject]
            return 0.0
        return left

    async def log_event(self, account_id: str, event: dict[str, Any]) -> None:
        self._events.setdefault(account_id, deque(maxlen=EVENT_LOG_SIZE)).appendleft(event)

    async def events(self, account_id: str) -> list[dict[str, Any]]:
        return list(self._events.get(account_id, ()))
