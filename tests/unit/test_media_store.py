"""The local media store: signed, expiring, owner-bound links; size cap; sweep."""

from __future__ import annotations

from pathlib import Path

from tollway.core.media_store import MediaStore


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
    import os

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
