"""The Redis backend of the limiter: the same GCRA as limits.MemoryLimiter, in Lua, so N replicas share
one limit exactly (each script runs atomically in Redis, and reads Redis's clock, not the replicas').

Keys of one bucket share a {hash tag}, so every script touches one cluster slot. Redis trouble never
hangs a request: short socket timeouts, a blocking pool with a short wait, no client retries, and an
overall deadline; then the operator's choice applies (`TOLLWAY_LIMITS_ON_REDIS_ERROR`): `closed`
refuses with 503, `open` admits without limiting. Either way it is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tollway.core.limits.limiter import (
    DAY_US,
    EVENT_LOG_SIZE,
    FAILED_LIMIT,
    FAILED_WINDOW_SECONDS,
    MINUTE_US,
    TOLERANCE_US,
    Lease,
    Limiter,
    Limits,
    Verdict,
    open_verdict,
)
from tollway.errors import ErrorCode, TollwayError

log = logging.getLogger("tollway.limits")
T = TypeVar("T")
_NAMES = ("RPM", "RPD", "TPM", "CONCURRENCY")

# GCRA over three dimensions + an in-flight sorted set, committed only if every check passes.
# KEYS: rpm tat, rpd tat, tpm tat, slots zset. ARGV: rpm, rpd, tpm, concurrency (0 = none), tokens,
# slot id, slot ttl (µs), tolerance (µs). Returns {allowed, refused index, retry µs, then remaining
# and reset µs per GCRA dimension (-1 when it has no limit)}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local periods = {60000000, 86400000000, 60000000}
local tol = tonumber(ARGV[8])
local out = {1, 0, 0, -1, -1, -1, -1, -1, -1}
local cur = {1, 0, 0, -1, -1, -1, -1, -1, -1}
local commit = {}
for i = 1, 3 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local cost = 1
    if i == 3 then cost = math.min(math.max(tonumber(ARGV[5]), 0), limit) end
    local interval = periods[i] / limit
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat == nil or tat < now then tat = now end
    local new = tat + cost * interval
    local excess = new - now - periods[i]
    cur[2 + 2 * i] = math.max(0, math.floor((periods[i] - (tat - now)) / interval + 1e-9))
    cur[3 + 2 * i] = math.ceil(tat - now)
    if excess > tol then
      out[1] = 0
      if excess > out[3] then out[2] = i; out[3] = math.ceil(excess) end
      out[2 + 2 * i] = math.max(0, math.floor((periods[i] - (tat - now)) / interval + 1e-9))
      out[3 + 2 * i] = math.ceil(tat - now)
    else
      commit[i] = new
      out[2 + 2 * i] = math.max(0, math.floor((periods[i] - (new - now)) / interval + 1e-9))
      out[3 + 2 * i] = math.ceil(new - now)
    end
  end
end
local conc = tonumber(ARGV[4])
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc then
    out[1] = 0
    if 1000000 > out[3] then out[2] = 4; out[3] = 1000000 end
  end
end
if out[1] == 0 then
  -- a refused request changes nothing, so it reports things as they stand
  cur[1] = 0; cur[2] = out[2]; cur[3] = out[3]
  return cur
end
for i = 1, 3 do
  if commit[i] then
    redis.call('SET', KEYS[i], string.format('%.3f', commit[i]), 'PX', math.ceil((commit[i] - now) / 1000) + 1000)
  end
end
if conc > 0 then
  local ttl = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[4], now + ttl, ARGV[6])
  redis.call('PEXPIRE', KEYS[4], math.ceil(ttl / 1000))
end
return out
"""

# KEYS: tpm tat, slots zset. ARGV: token correction (actual − admitted), µs per token, slot id ('' = none).
FINISH = """
local delta = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
if delta ~= 0 and per > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]))
  if tat then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local new = tat + delta * per
    if new <= now then
      redis.call('DEL', KEYS[1])
    else
      redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
    end
  end
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
"""

# Renew one in-flight slot's lease, if it is still there. KEYS: slots zset. ARGV: slot id, slot ttl (µs).
RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
return 1
"""
# A plain GCRA hit (key creation). ARGV: limit, period µs, tolerance µs. Returns {allowed, retry µs}.
HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new = tat + interval
local excess = new - now - period
if excess > tonumber(ARGV[3]) then
  return {0, math.ceil(excess)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, 0}
"""


# The failed-request limiter: an exact "more than ARGV[1] in the window" over a ring of the last
# ARGV[1]+1 failure times (bounded), then a block. KEYS: ring, block. ARGV: limit, window ms.
FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit)
redis.call('PEXPIRE', KEYS[1], window)
local oldest = tonumber(redis.call('LINDEX', KEYS[1], limit))
if oldest and now - oldest <= window then
  redis.call('SET', KEYS[2], '1', 'PX', window, 'NX')
  return 1
end
return 0
"""


class RedisLimiter(Limiter):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tollway:rl:",
        on_error: Literal["open", "closed"] = "closed",
        max_connections: int = 64,
        pool_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        deadline: float = 1.0,
        slot_seconds: float = 30.0,
    ) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,  # waiting for a free connection is bounded too
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # No client-side retries: a retry loop is how a down Redis becomes a hung request.
            retry=Retry(NoBackoff(), 0),
        )
        self.redis: Redis = Redis(connection_pool=pool)
        self.prefix = prefix
        self.on_error = on_error
        self._deadline = deadline
        self._slot_us = int(slot_seconds * 1e6)
        self._admit = self.redis.register_script(ADMIT)
        self._finish = self.redis.register_script(FINISH)
        self._renew = self.redis.register_script(RENEW)
        self._owned: dict[str, str] = {}  # in-flight slot id → its zset, while this process holds it
        self._hit = self.redis.register_script(HIT)
        self._failed = self.redis.register_script(FAILED)
        self._last_log = 0.0
        self._slots = 0

    def _key(self, bucket: str, part: str) -> str:
        return f"{self.prefix}{{{bucket}}}:{part}"

    async def _call(self, operation: Callable[[], Awaitable[T]], fallback: T, what: str) -> T:
        """Run one Redis operation under the deadline; on failure apply the operator's policy."""
        try:
            async with asyncio.timeout(self._deadline):
                return await operation()
        except (RedisError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            if now - self._last_log >= 60 or self._last_log == 0.0:
                self._last_log = now
                log.error(
                    "rate-limit store (Redis) failed during %s; failing %s: %r", what, self.on_error, exc
                )
            if self.on_error == "closed":
                raise TollwayError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "Rate limiting is temporarily unavailable. Retry with backoff.",
                    headers={"retry-after": "1", "retry-after-ms": "1000"},
                ) from None
            return fallback

    async def admit(self, bucket: str, limits: Limits, tokens: int) -> Verdict:
        rpm, rpd, tpm = limits.gcra()
        concurrency = limits.concurrency or 0
        self._slots += 1
        slot = f"{id(self)}:{self._slots}:{time.time_ns()}" if concurrency else ""
        keys = [self._key(bucket, p) for p in ("m", "d", "t", "c")]
        args: list[str | int | float] = [
            rpm,
            rpd,
            tpm,
            concurrency,
            max(tokens, 0),
            slot,
            self._slot_us,
            TOLERANCE_US,
        ]

        async def run() -> list[int]:
            return [int(v) for v in await self._admit(keys=keys, args=args)]

        empty: list[int] = []
        raw = await self._call(run, empty, "admission")
        if not raw:
            return open_verdict()
        state = tuple(
            None if limit == 0 else (limit, raw[3 + 2 * i], float(raw[4 + 2 * i]))
            for i, limit in enumerate((rpm, rpd, tpm))
        )
        if not raw[0]:
            return Verdict(False, state, float(raw[2]), _NAMES[raw[1] - 1])
        cost = min(max(tokens, 0), tpm) if tpm else 0
        if slot:
            self._owned[slot] = keys[3]
        return Verdict(True, state, lease=Lease(bucket, cost, tpm, slot or None))

    async def finish(self, lease: Lease, actual_tokens: int) -> None:
        if lease.done:
            return
        lease.done = True
        if lease.slot:
            self._owned.pop(lease.slot, None)
        per_token = MINUTE_US / lease.tpm if lease.tpm else 0
        keys = [self._key(lease.bucket, "t"), self._key(lease.bucket, "c")]
        args = [actual_tokens - lease.tokens, per_token, lease.slot or ""]

        async def run() -> None:
            await self._finish(keys=keys, args=args)

        # Nothing to refuse at release; if Redis is down the slot's TTL frees it.
        await _quiet(self._call(run, None, "release"))

    async def renew(self) -> int:
        owned = list(self._owned.items())
        if not owned:
            return 0

        async def run() -> int:
            pipe = self.redis.pipeline(transaction=False)  # one round trip; each slot its own script
            for slot, zset in owned:
                await self._renew(keys=[zset], args=[slot, self._slot_us], client=pipe)
            return sum(int(v) for v in await pipe.execute())

        return await _quiet(self._call(run, 0, "slot renewal"), 0)

    async def hit(self, bucket: str, limit: int, period_seconds: int) -> tuple[bool, float]:
        keys = [f"{self.prefix}{bucket}"]

        async def run() -> tuple[bool, float]:
            allowed, retry = await self._hit(
                keys=keys, args=[limit, period_seconds * 1_000_000, TOLERANCE_US]
            )
            return bool(allowed), float(retry)

        return await self._call(run, (True, 0.0), "key-creation limit")

    async def record_failure(self, subject: str) -> None:
        keys = [f"{self.prefix}failed:{{{subject}}}", f"{self.prefix}blocked:{{{subject}}}"]
        args = [FAILED_LIMIT, FAILED_WINDOW_SECONDS * 1000]

        async def run() -> None:
            await self._failed(keys=keys, args=args)

        # Abuse protection fails open: the admission limiter already applies the operator's policy.
        await _quiet(self._call(run, None, "failed-request count"))

    async def blocked_for(self, subject: str) -> float:
        key = f"{self.prefix}blocked:{{{subject}}}"

        async def run() -> float:
            ttl = int(await self.redis.pttl(key))
            return max(0, ttl) * 1000.0

        return await _quiet(self._call(run, 0.0, "failed-request check"), 0.0)

    async def log_event(self, account_id: str, event: dict[str, Any]) -> None:
        key = f"{self.prefix}log:{account_id}"

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, orjson.dumps(event))
                pipe.ltrim(key, 0, EVENT_LOG_SIZE - 1)
                pipe.pexpire(key, DAY_US // 1000 * 7)
                await pipe.execute()

        await _quiet(self._call(run, None, "rate-limit log"))

    async def events(self, account_id: str) -> list[dict[str, Any]]:
        key = f"{self.prefix}log:{account_id}"

        async def run() -> list[dict[str, Any]]:
            return [orjson.loads(item) for item in await self.redis.lrange(key, 0, EVENT_LOG_SIZE - 1)]

        return await self._call(run, [], "rate-limit log")

    async def aclose(self) -> None:
        await self.redis.aclose()


async def _quiet(awaitable: Awaitable[T], default: Any = None) -> T:
    try:
        return await awaitable
    except TollwayError:
        return default  # type: ignore[no-any-return]
