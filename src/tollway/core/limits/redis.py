"""The Redis backend of the limiter: the same GCRA as limits.MemoryLimiter, in Lua (limits/lua.py), so N
replicas share one limit exactly (each script runs atomically in Redis, on Redis's clock).

One round trip per call. A model call used to cost three: the failed-request check (api/middleware.py),
ADMIT, and FINISH at its end. Now:

- the failed-request check rides in ADMIT (its optional fifth key; gate.FailedCheck): a blocked
  credential is refused in the same atomic step, which commits nothing for it. A call that fails
  before its admission is checked and counted in one FAILED script at its answer's first byte. (A
  credential this process saw fail or blocked lately is checked before its call, as other routes
  are: then a hammering client costs one round trip and nothing else.)
- FINISH is not sent on its own. `finish` queues it in this process and returns at once; the queue
  goes out ahead of this process's next round trip to Redis (an admission, usually the next call's),
  in the same pipeline, or, if no round trip comes first, on a timer `flush_seconds` after the first
  finish was queued (`TOLLWAY_LIMITS_FLUSH_SECONDS`, 5 ms): all queued finishes in one pipeline. So
  N calls in a row cost N round trips (bench/limiter.py counts them; tests/contract/test_rate_limits.py
  over HTTP), and a process whose calls come less often than every 5 ms pays a flush of its own now
  and then: never more than one round trip per 5 ms.

Every command is an EVALSHA in a `pipeline(transaction=False)`: one write, one read, no MULTI (each
script is atomic on its own, and finishes commute: ZREMs of distinct slots, sums of token
corrections). All scripts are loaded with a process's first pipeline (redis-py's Script in a pipeline
would ask SCRIPT EXISTS first, a round trip of its own each time). Loaded together, Redis has all of
them or none (after a restart, a failover, SCRIPT FLUSH): then every command of a pipeline answered
NOSCRIPT and ran nothing, and they run again in their order behind a reload, one more round trip, once.

What the wait costs, and why the limits stay exact: a finish only ever frees a slot or corrects a
token estimate (a guess until the call ended); admissions are never delayed, batched or guessed, so
no limit is ever exceeded: the worst a late finish does is refuse a call it would have admitted. A
sequential caller of this process (finish, then admit) always sees its finish: the queue rides ahead
of its admission, which waits for a flush on its way. An admission running at the same time as the
round trip that carries a finish, and other replicas, see it once that round trip lands: at most
`flush_seconds` + one round trip after `finish` returned, so a slot is freed at most ~5 ms (plus a
round trip) late. `aclose` sends the queue and waits for flushes on their way: a clean shutdown
loses nothing. A crash, or a round trip that fails, loses the finishes it had: their slots expire
with their lease (`slot_seconds`, no longer renewed) and their token corrections are lost (the
estimates stand), as when a FINISH of its own failed.

Keys of one bucket share a {hash tag}, so each script touches one cluster slot, ADMIT's block key
apart (the credential's, tagged by it): the limiter runs on one Redis (redis-py's `Redis`, not a
cluster client). Redis trouble never hangs a request: short socket timeouts, a blocking pool with a
short wait, no client retries, and an overall deadline; then the operator's choice applies
(`TOLLWAY_LIMITS_ON_REDIS_ERROR`): `closed` refuses with 503, `open` admits without limiting. Either
way it is logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from tollway.core.limits import lua
from tollway.core.limits.limiter import (
    DAY_US,
    EVENT_LOG_SIZE,
    MINUTE_US,
    TOLERANCE_US,
    Lease,
    Limiter,
    Limits,
    Verdict,
    blocked_verdict,
    open_verdict,
)
from tollway.errors import ErrorCode, TollwayError

log = logging.getLogger("tollway.limits")
T = TypeVar("T")
_NAMES = ("RPM", "RPD", "TPM", "CONCURRENCY")
_BLOCKED = 5  # ADMIT's refused index when the credential's failed-request block refused it


@dataclass(frozen=True, slots=True)
class _Command:
    args: tuple[Any, ...]


def _script(source: str) -> Callable[[list[str], list[Any]], _Command]:
    sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names a script by this digest
    return lambda keys, args: _Command(("EVALSHA", sha, len(keys), *keys, *args))


_ADMIT, _FINISH, _RENEW = _script(lua.ADMIT), _script(lua.FINISH), _script(lua.RENEW)
_HIT, _FAILED = _script(lua.HIT), _script(lua.FAILED)
_SOURCES = (lua.ADMIT, lua.FINISH, lua.RENEW, lua.HIT, lua.FAILED)


class RedisLimiter(Limiter):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tollway:rl:",
        on_error: Literal["open", "closed"] = "closed",
        max_connections: int = 64,
        pool_timeout: float | None = None,
        socket_timeout: float | None = None,
        deadline: float = 2.0,
        slot_seconds: float = 30.0,
        flush_seconds: float = 0.005,
    ) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            # Unset, each is the deadline: they are wall time on the event loop, and shorter ones
            # turn a busy process into "Redis failed" (503s under a burst).
            timeout=pool_timeout or deadline,
            socket_timeout=socket_timeout or deadline,
            socket_connect_timeout=socket_timeout or deadline,
            # No client-side retries: a retry loop is how a down Redis becomes a hung request.
            retry=Retry(NoBackoff(), 0),
        )
        self.redis: Redis = Redis(connection_pool=pool)
        self.prefix = prefix
        self.on_error = on_error
        self._deadline = deadline
        self._slot_us = int(slot_seconds * 1e6)
        self._flush_seconds = flush_seconds
        self._owned: dict[str, str] = {}  # in-flight slot id → its zset, while this process holds it
        self._queue: list[_Command] = []  # finishes not sent yet
        self._timer: asyncio.TimerHandle | None = None  # sends the queue if no round trip takes it first
        self._flushes: set[asyncio.Task[None]] = set()  # queues on their way to Redis
        self._loaded = False  # whether this process has loaded the scripts into Redis
        self._last_log = 0.0
        self._slots = 0
        self.round_trips = 0  # pipelines sent: what a call costs in Redis round trips (bench/limiter.py)

    def _key(self, bucket: str, part: str) -> str:
        return f"{self.prefix}{{{bucket}}}:{part}"

    def _failed_keys(self, subject: str) -> list[str]:
        return [f"{self.prefix}failed:{{{subject}}}", f"{self.prefix}blocked:{{{subject}}}"]

    def _report(self, exc: BaseException, what: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= 60 or self._last_log == 0.0:
            self._last_log = now
            log.error("rate-limit store (Redis) failed during %s; failing %s: %r", what, self.on_error, exc)

    async def _call(self, operation: Callable[[], Awaitable[T]], fallback: T, what: str) -> T:
        """Run one Redis operation under the deadline; on failure apply the operator's policy."""
        try:
            async with asyncio.timeout(self._deadline):
                return await operation()
        except (RedisError, OSError, TimeoutError) as exc:
            self._report(exc, what)
            if self.on_error == "closed":
                raise TollwayError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "Rate limiting is temporarily unavailable. Retry with backoff.",
                    headers={"retry-after": "1", "retry-after-ms": "1000"},
                ) from None
            return fallback

    # -- round trips -----------------------------------------------------------------------------

    async def _pipeline(self, commands: list[_Command], load: bool) -> list[Any]:
        """One round trip: `commands` in one pipeline, behind the loading of every script if `load`."""
        self.round_trips += 1
        pipe = self.redis.pipeline(transaction=False)
        for source in _SOURCES if load else ():
            pipe.script_load(source)
        for command in commands:
            pipe.execute_command(*command.args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        if load and not any(isinstance(answer, Exception) for answer in answers[: len(_SOURCES)]):
            self._loaded = True
        return answers[len(_SOURCES) :] if load else answers

    async def _send(self, commands: list[_Command]) -> list[Any]:
        """`commands` in one round trip; their answers, a command's error in its place.

        The scripts are loaded all at once (a process's first round trip, or after a NOSCRIPT), never
        one by one: then Redis has all or none of them, and a pipeline whose scripts Redis forgot (a
        restart, a failover, SCRIPT FLUSH) failed as a whole, so running it again keeps its order."""
        answers = await self._pipeline(commands, load=not self._loaded)
        lost = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if lost:
            again = await self._pipeline([commands[i] for i in lost], load=True)
            for i, answer in zip(lost, again, strict=True):
                answers[i] = answer
        return answers

    def _take_queue(self) -> list[_Command]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued, self._queue = self._queue, []
        return queued

    async def _round_trip(self, commands: list[_Command]) -> list[Any]:
        """`commands` in one round trip, behind this process's queued finishes; their answers.

        A flush already on its way lands first, so a finish counts before anything asked after it."""
        if self._flushes:
            await asyncio.wait(list(self._flushes))  # waits without cancelling them
        queued = self._take_queue()
        answers = await self._send([*queued, *commands])
        for answer in answers[: len(queued)]:
            if isinstance(answer, Exception):
                self._report(answer, "release")
        for answer in answers[len(queued) :]:
            if isinstance(answer, Exception):
                raise answer
        return answers[len(queued) :]

    def _flush(self) -> None:
        """Send the queued finishes now, in one round trip of their own."""
        queued = self._take_queue()
        if queued:
            task = asyncio.get_running_loop().create_task(self._deliver(queued))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _deliver(self, queued: list[_Command]) -> None:
        async def run() -> None:
            for answer in await self._send(queued):
                if isinstance(answer, Exception):
                    self._report(answer, "release")

        # Nothing to refuse at release; if Redis is down the slot's lease frees it.
        await _quiet(self._call(run, None, "release"))

    # -- the limiter -------------------------------------------------------------------------------

    async def admit(self, bucket: str, limits: Limits, tokens: int, subject: str | None = None) -> Verdict:
        rpm, rpd, tpm = limits.gcra()
        concurrency = limits.concurrency or 0
        self._slots += 1
        slot = f"{id(self)}:{self._slots}:{time.time_ns()}" if concurrency else ""
        keys = [self._key(bucket, p) for p in ("m", "d", "t", "c")]
        if subject is not None:
            keys.append(self._failed_keys(subject)[1])
        args = [rpm, rpd, tpm, concurrency, max(tokens, 0), slot, self._slot_us, TOLERANCE_US]

        async def run() -> list[int]:
            [answer] = await self._round_trip([_ADMIT(keys, args)])
            return [int(v) for v in answer]

        empty: list[int] = []
        raw = await self._call(run, empty, "admission")
        if not raw:
            return open_verdict()
        if not raw[0] and raw[1] == _BLOCKED:
            return blocked_verdict(float(raw[2]))
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
        self._queue_finish(lease, actual_tokens)

    def release_soon(self, lease: Lease | None, actual_tokens: int = 0) -> None:
        if lease is not None:
            self._queue_finish(lease, actual_tokens)  # no await: nothing here to cancel

    def _queue_finish(self, lease: Lease, actual_tokens: int) -> None:
        if lease.done:
            return
        lease.done = True
        if lease.slot:
            self._owned.pop(lease.slot, None)
        correction = actual_tokens - lease.tokens if lease.tpm else 0
        if not lease.slot and not correction:
            return  # nothing for Redis to do
        per_token = MINUTE_US / lease.tpm if lease.tpm else 0
        keys = [self._key(lease.bucket, "t"), self._key(lease.bucket, "c")]
        self._queue.append(_FINISH(keys, [correction, per_token, lease.slot or ""]))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self._flush)

    async def renew(self) -> int:
        owned = list(self._owned.items())
        if not owned:
            return 0

        async def run() -> int:
            commands = [_RENEW([zset], [slot, self._slot_us]) for slot, zset in owned]
            return sum(int(v) for v in await self._round_trip(commands))

        return await _quiet(self._call(run, 0, "slot renewal"), 0)

    async def hit(self, bucket: str, limit: int, period_seconds: int) -> tuple[bool, float]:
        command = _HIT([f"{self.prefix}{bucket}"], [limit, period_seconds * 1_000_000, TOLERANCE_US])

        async def run() -> tuple[bool, float]:
            [(allowed, retry)] = await self._round_trip([command])
            return bool(allowed), float(retry)

        return await self._call(run, (True, 0.0), "key-creation limit")

    async def _failed(
        self, subject: str, check: bool, count: bool, what: str, limit: int | None = None
    ) -> float:
        policy = self.failed_policy
        limit = policy.limit if limit is None else limit
        args = [limit, policy.window_seconds * 1000, int(check), int(count), policy.block_seconds * 1000]
        command = _FAILED(self._failed_keys(subject), args)

        async def run() -> float:
            [left_ms] = await self._round_trip([command])
            return int(left_ms) * 1000.0

        # Abuse protection fails open: the admission limiter already applies the operator's policy.
        return await _quiet(self._call(run, 0.0, what), 0.0)

    async def record_failure(self, subject: str, limit: int | None = None) -> None:
        await self._failed(subject, False, True, "failed-request count", limit)

    async def failed_check(self, subject: str, failed: bool, limit: int | None = None) -> float:
        return await self._failed(subject, True, failed, "failed-request check", limit)

    async def blocked_for(self, subject: str) -> float:
        command = _Command(("PTTL", self._failed_keys(subject)[1]))

        async def run() -> float:
            [ttl] = await self._round_trip([command])
            return max(0, int(ttl)) * 1000.0

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
        """Send the queued finishes and wait for those on their way, then close the pool."""
        self._flush()
        if self._flushes:
            await asyncio.wait(list(self._flushes))
        await self.redis.aclose()


async def _quiet(awaitable: Awaitable[T], default: Any = None) -> T:
    try:
        return await awaitable
    except TollwayError:
        return default  # type: ignore[no-any-return]
