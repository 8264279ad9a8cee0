"""The local media store: signed, expiring, owner-bound links; size cap; sweep."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest

from tollway.core.media.store import TEMP_PREFIX, MediaStore


def _query(path: str) -> tuple[str, str, str]:
    media_id, _, query = path.removeprefix("media/").partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    return media_id, params["exp"], params["sig"]


def test_a_signed_link_opens_until_it_expires(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, b"pepper", ttl_seconds=60)
    entry = store.put("acct_a", b"bytes", "image/png", now=1000)
    media_id, exp, sig = _query(store.signed_path(entry))
    opened = store.open(media_id, exp, sig, now=1030)
    assert opened is not None and opened.path.read_bytes() == b"bytes"
    assert opened.content_type == "image/png"
    assert store.open(media_id, exp, sig, now=1061) is None  # expired, and deleted
    assert not entry.path.exists()


def test_tampered_links_and_other_owners_get_nothing(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, b"pepper")
    entry = store.put("acct_a", b"x", "image/png")
    media_id, exp, sig = _query(store.signed_path(entry))
    assert store.open(media_id, exp, "0" * 64) is None
    assert store.open(media_id, str(int(exp) + 10), sig) is None
    assert store.open(media_id, exp, sig, account_id="acct_b") is None
    assert store.open(media_id, exp, sig, account_id="acct_a") is not None
    assert store.open("../secret", exp, sig) is None
    other_pepper = MediaStore(tmp_path, b"another")
    assert other_pepper.open(media_id, exp, sig) is None


def test_the_store_is_size_capped_oldest_first(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, b"p", max_bytes=25)
    first = store.put("a", b"0" * 10, "image/png")
    os.utime(first.path, (1, 1))  # make it clearly the oldest
    second = store.put("a", b"1" * 10, "image/png")
    third = store.put("a", b"2" * 10, "image/png")
    assert not first.path.exists()
    assert second.path.exists() and third.path.exists()


def test_sweep_removes_expired_entries(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, b"p", ttl_seconds=1000)
    old = store.put("a", b"x", "image/png", now=100)
    fresh = store.put("a", b"y", "image/png", now=1000)
    assert store.sweep(now=1500) == 1
    assert not old.path.exists() and fresh.path.exists()
    # A write sweeps too (at most once a minute): no background task is needed.
    store.put("a", b"z", "image/png", now=2500)
    assert not fresh.path.exists()


# -- several processes on one media directory (replicas sharing data_dir) ---------------------------

RACE_TTL_SECONDS = 3600
RACE_SECONDS = 1.5  # writing for at least this long (about 5,000 puts on an idle machine)...
RACE_MIN_PUTS = 3000  # ...and this many puts (a loaded machine writes slower)...
RACE_MAX_SECONDS = 8.0  # ...but never for longer
RACE_KEEP = 2  # entries kept before each is checked and deleted: a small directory, so many sweeps


def _sweep_until_stopped(root: str, ready: EventType, stop: EventType, sweeps: Synchronized[int]) -> None:
    """Another replica: sweeps the shared directory in a loop, in a process of its own."""
    store = MediaStore(Path(root), b"p", ttl_seconds=RACE_TTL_SECONDS)
    ready.set()
    while not stop.is_set():
        store.sweep()
        with sweeps.get_lock():
            sweeps.value += 1


def _intact(store: MediaStore, media_id: str, data: bytes) -> bool:
    entry = store.get(media_id, owner="acct")
    try:
        return entry is not None and entry.path.read_bytes() == data
    except FileNotFoundError:
        return False


@pytest.mark.slow  # starts a process
def test_a_sweep_in_another_process_never_loses_a_fresh_entry(tmp_path: Path) -> None:
    """Regression: a sweep that read a half-written `.json` took the entry for garbage and deleted it
    (against the old, non-atomic write, this loses 15 to 45 of ~6,000 puts). Writes are whole or not
    at all now (temp file + rename), and temporary files that a dead writer left behind are swept
    once older than the TTL."""
    store = MediaStore(tmp_path, b"p", ttl_seconds=RACE_TTL_SECONDS)
    stale = tmp_path / f"{TEMP_PREFIX}med_dead.json.0badf00d"  # a writer died mid-put, long ago
    in_flight = tmp_path / f"{TEMP_PREFIX}med_alive.0badf00d"  # a writer is writing right now
    for temporary in (stale, in_flight):
        temporary.write_bytes(b"{")
    long_ago = time.time() - RACE_TTL_SECONDS - 60
    os.utime(stale, (long_ago, long_ago))

    context = multiprocessing.get_context("spawn")
    ready, stop, sweeps = context.Event(), context.Event(), context.Value("i", 0)
    sweeper = context.Process(target=_sweep_until_stopped, args=(str(tmp_path), ready, stop, sweeps))
    sweeper.start()
    lost: list[str] = []
    puts = 0
    try:
        assert ready.wait(30), "the sweeper process did not start"
        started = time.monotonic()

        def writing() -> bool:
            elapsed = time.monotonic() - started
            return elapsed < RACE_MAX_SECONDS and (elapsed < RACE_SECONDS or puts < RACE_MIN_PUTS)

        pending: deque[tuple[str, bytes]] = deque()
        while True:
            if writing():
                data = os.urandom(16)
                pending.append((store.put("acct", data, "image/png").id, data))
                puts += 1
                if len(pending) <= RACE_KEEP:
                    continue
            elif not pending:
                break
            media_id, data = pending.popleft()
            if not _intact(store, media_id, data):
                lost.append(media_id)
            store.delete(media_id)
    finally:
        stop.set()
        sweeper.join(10)
        if sweeper.is_alive():
            sweeper.kill()
    assert sweeper.exitcode == 0
    assert puts >= 1000 and sweeps.value >= 100, f"too little overlap: {puts} puts, {sweeps.value} sweeps"
    assert not lost, f"{len(lost)} of {puts} fresh entries lost or unreadable after a concurrent sweep"
    assert not stale.exists(), "a temporary file older than the TTL was not swept"
    assert in_flight.exists(), "a fresh temporary file (a write in progress) was swept"
