"""Generated media kept briefly on local disk, served by signed, expiring, owner-bound URLs.

DESIGN §6/§8: clients never see an upstream's media URL, and media is kept only for a short TTL.
A URL carries `exp` and `sig` = HMAC-SHA256(pepper, id|owner|exp): whoever holds it may download
until it expires (the OpenAI SDK fetches `url` with no key), and a request that presents another
account's key gets 404, so a leaked link is bounded in time and never serves a different tenant.
The directory is size-capped: the oldest files go first.

Interface for other backends (an S3-compatible store for multi-replica deployments): `put(owner,
data, content_type) -> StoredMedia`, `signed_path(entry)`, `open(id, exp, sig, account_id=)`,
`get(id, owner=)`, `delete(id)` and `sweep()`; readers only use `entry.path.read_bytes()` today,
which an S3 backend would replace with a ranged GET (or a short-lived presigned redirect: never the
upstream's URL). Today every replica must share `data_dir` (one host or a shared volume).

Shared by several processes, so every file appears whole or not at all: bytes and metadata are
written to dot-named temporary files (which no `med_*` glob matches) and renamed into place, the
metadata last (an entry exists once its `.json` does). Otherwise another replica's sweep could read
a half-written `.json`, take it for garbage and delete a fresh entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TTL_SECONDS = 3600
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
SWEEP_EVERY_SECONDS = 60.0
TEMP_PREFIX = ".tmp-"  # never matched by the `med_*` globs below


@dataclass(frozen=True, slots=True)
class StoredMedia:
    id: str
    owner: str
    content_type: str
    expires_at: int
    path: Path


class MediaStore:
    def __init__(
        self,
        root: Path,
        pepper: bytes,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.root = root
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        # A key of its own, derived from the pepper: a media signature can never double as a key hash.
        self._key = hmac.new(pepper, b"tollway-media-url-v1", hashlib.sha256).digest()
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def _sign(self, media_id: str, owner: str, expires_at: int) -> str:
        message = f"{media_id}|{owner}|{expires_at}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def put(self, owner: str, data: bytes, content_type: str, *, now: float | None = None) -> StoredMedia:
        """Write the bytes (blocking: call from a worker thread) and return the entry."""
        now = time.time() if now is None else now
        if now - self._last_sweep > SWEEP_EVERY_SECONDS:
            # Expired media goes on the next write, at most once a minute: no background task needed.
            self._last_sweep = now
            if self.root.exists():
                self.sweep(now)
        media_id = "med_" + secrets.token_urlsafe(18)
        expires_at = int(now) + self.ttl_seconds
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / media_id
        meta = {"owner": owner, "content_type": content_type, "expires_at": expires_at}
        with self._lock:
            self._make_room(len(data), now)
            self._write(path, data)
            self._write(path.with_suffix(".json"), json.dumps(meta).encode())
        return StoredMedia(media_id, owner, content_type, expires_at, path)

    def _write(self, path: Path, data: bytes) -> None:
        """Whole or not at all, for readers in other processes: a temporary file, then a rename."""
        temporary = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def signed_path(self, entry: StoredMedia) -> str:
        """`media/{id}?exp=…&sig=…`, relative to the API base the client used."""
        return f"media/{entry.id}?exp={entry.expires_at}&sig={self._sign(entry.id, entry.owner, entry.expires_at)}"

    def open(
        self, media_id: str, exp: str, sig: str, *, account_id: str | None = None, now: float | None = None
    ) -> StoredMedia | None:
        """The entry if the signature holds, it has not expired and (given a key) it is the caller's."""
        now = time.time() if now is None else now
        if not media_id.startswith("med_") or "/" in media_id or not exp.isdigit():
            return None
        path = self.root / media_id
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None
        owner = str(meta["owner"])
        expires_at = int(meta["expires_at"])
        if int(exp) != expires_at or not hmac.compare_digest(sig, self._sign(media_id, owner, expires_at)):
            return None
        if now > expires_at:
            self._remove(path)
            return None
        if account_id is not None and account_id != owner:
            return None
        return StoredMedia(media_id, owner, str(meta["content_type"]), expires_at, path)

    def get(self, media_id: str, *, owner: str, now: float | None = None) -> StoredMedia | None:
        """The entry by id for its owner (no signature: for routes that authenticate the caller,
        e.g. video/download/{id}); None when unknown, expired or someone else's."""
        now = time.time() if now is None else now
        if not media_id.startswith("med_") or "/" in media_id:
            return None
        path = self.root / media_id
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None
        if str(meta["owner"]) != owner:
            return None
        if now > int(meta["expires_at"]):
            self._remove(path)
            return None
        return StoredMedia(media_id, owner, str(meta["content_type"]), int(meta["expires_at"]), path)

    def delete(self, media_id: str) -> None:
        """Delete now (a client that asked for deletion on download)."""
        if media_id.startswith("med_") and "/" not in media_id:
            with self._lock:
                self._remove(self.root / media_id)

    def sweep(self, now: float | None = None) -> int:
        """Delete expired entries; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            for meta_path in self.root.glob("med_*.json"):
                try:
                    expires_at = int(json.loads(meta_path.read_text())["expires_at"])
                except FileNotFoundError:
                    continue  # removed meanwhile (by another process, or a download's deletion)
                except (OSError, ValueError, KeyError):
                    expires_at = 0  # unreadable: written whole (see put), so it is garbage
                if now > expires_at:
                    self._remove(meta_path.with_suffix(""))
                    removed += 1
            for temporary in self.root.glob(f"{TEMP_PREFIX}med_*"):  # left by a process that died
                try:
                    if now - temporary.stat().st_mtime > self.ttl_seconds:
                        temporary.unlink(missing_ok=True)
                except OSError:
                    continue
        return removed

    def _make_room(self, incoming: int, now: float) -> None:
        files = [p for p in self.root.glob("med_*") if p.suffix != ".json"]
        used = 0
        entries: list[tuple[float, Path, int]] = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            used += stat.st_size
            entries.append((stat.st_mtime, path, stat.st_size))
        entries.sort()
        for _, path, size in entries:
            if used + incoming <= self.max_bytes:
                break
            self._remove(path)
            used -= size

    @staticmethod
    def _remove(path: Path) -> None:
        for victim in (path, path.with_suffix(".json")):
            victim.unlink(missing_ok=True)
