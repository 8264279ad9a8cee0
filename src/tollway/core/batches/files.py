"""Files (the OpenAI Files API): metadata in the `files` table, the bytes on disk like generated media.

Stored as media is (core/media/store.py): plain files under `data_dir/files`, written whole or not at
all (a temporary file, then a rename), owner-bound (another account's id is 404, never its bytes),
never logged. Every replica must share `data_dir`, as for media. A file lives `files_ttl_seconds`;
a batch's input goes when its batch ends, and an output (`batch_output`) after its first download
unless `files_delete_after_download` is off. An account keeps at most `files_storage_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.errors import ErrorCode, TollwayError
from tollway.settings import Settings
from tollway.store.tables import files

TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class FileRow:
    id: str
    account_id: str
    purpose: str
    filename: str
    bytes: int
    lines: int
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: Any) -> FileRow:
        values = {name: getattr(row, name) for name in cls.__slots__}
        values["created_at"] = as_utc(values["created_at"])
        values["expires_at"] = as_utc(values["expires_at"])
        return cls(**values)

    def view(self) -> dict[str, Any]:
        """The openai SDK's FileObject."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at.timestamp()),
            "expires_at": int(self.expires_at.timestamp()),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def write_whole(path: Path, data: bytes) -> None:
    """Whole or not at all, for readers in other processes: a temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class FileStore:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.root = settings.data_dir / "files"

    def path(self, file_id: str) -> Path:
        if not file_id.startswith("file-") or "/" in file_id or "." in file_id:
            raise ValueError(f"not a file id: {file_id!r}")
        return self.root / file_id

    async def create(self, account_id: str, purpose: str, filename: str, data: bytes, lines: int) -> FileRow:
        """Store an upload: 413 when the account's storage cannot take it."""
        used = await self.used_bytes(account_id)
        if used + len(data) > self.settings.files_storage_bytes:
            raise TollwayError(
                ErrorCode.STORAGE_LIMIT,
                f"Your files take {used} bytes; this one ({len(data)} bytes) would pass the account's "
                f"{self.settings.files_storage_bytes}. Delete files or wait for them to expire.",
                param="file",
            )
        file_id = new_file_id()
        await asyncio.to_thread(write_whole, self.path(file_id), data)
        now = utcnow()
        row = self.row(file_id, account_id, purpose, filename, len(data), lines, now)
        async with self.engine.begin() as conn:
            await conn.execute(insert(files).values(**row))
        return FileRow(**row)

    def row(
        self, file_id: str, account_id: str, purpose: str, filename: str, size: int, lines: int, now: datetime
    ) -> dict[str, Any]:
        expires_at = now + timedelta(seconds=self.settings.files_ttl_seconds)
        return {
            "id": file_id,
            "account_id": account_id,
            "purpose": purpose,
            "filename": filename[:255],
            "bytes": size,
            "lines": lines,
            "created_at": now,
            "expires_at": expires_at,
        }

    @staticmethod
    def insert_once(conn: Connection, row: dict[str, Any]) -> None:
        """A batch's output file row, in its batch's final transaction (written once)."""
        exists = conn.execute(select(files.c.id).where(files.c.id == row["id"])).first()
        if exists is None:
            conn.execute(insert(files).values(**row))

    async def used_bytes(self, account_id: str) -> int:
        query = select(func.coalesce(func.sum(files.c.bytes), 0)).where(
            files.c.account_id == account_id, files.c.expires_at > utcnow()
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def get(self, account_id: str, file_id: str) -> FileRow:
        """The account's file, or 404 FILE_NOT_FOUND (another account's id looks like no id at all)."""
        query = select(files).where(
            files.c.id == file_id, files.c.account_id == account_id, files.c.expires_at > utcnow()
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise TollwayError(ErrorCode.FILE_NOT_FOUND, param="file_id")
        return FileRow.of(row)

    async def list(
        self, account_id: str, *, after: str | None, limit: int, purpose: str | None, newest_first: bool
    ) -> tuple[list[FileRow], bool]:
        """A page of the account's files and whether more follow (cursor: the last id seen)."""
        query = select(files).where(files.c.account_id == account_id, files.c.expires_at > utcnow())
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        order = (
            (files.c.created_at.desc(), files.c.id.desc())
            if newest_first
            else (files.c.created_at, files.c.id)
        )
        async with self.engine.connect() as conn:
            if after is not None:
                cursor = (await conn.execute(select(files.c.created_at).where(
                    files.c.id == after, files.c.account_id == account_id))).first()  # fmt: skip
                if cursor is not None:
                    at = cursor[0]
                    past = (files.c.created_at < at) | ((files.c.created_at == at) & (files.c.id < after))
                    if not newest_first:
                        past = (files.c.created_at > at) | ((files.c.created_at == at) & (files.c.id > after))
                    query = query.where(past)
            rows = (await conn.execute(query.order_by(*order).limit(limit + 1))).all()
        return [FileRow.of(row) for row in rows[:limit]], len(rows) > limit

    async def content(self, account_id: str, file_id: str) -> bytes:
        """The bytes of the account's file; an output file goes after this first download."""
        entry = await self.get(account_id, file_id)
        try:
            data = await asyncio.to_thread(self.path(file_id).read_bytes)
        except FileNotFoundError:
            raise TollwayError(ErrorCode.FILE_NOT_FOUND, param="file_id") from None
        if entry.purpose == "batch_output" and self.settings.files_delete_after_download:
            await self.delete(account_id, file_id)
        return data

    async def read(self, file_id: str) -> bytes | None:
        """The bytes, for the batch runner (None when gone)."""
        try:
            return await asyncio.to_thread(self.path(file_id).read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, account_id: str, file_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(files).where(files.c.id == file_id, files.c.account_id == account_id)
            )
        await asyncio.to_thread(self.path(file_id).unlink, missing_ok=True)
        return bool(result.rowcount)

    async def keep_until(self, file_id: str, expires_at: datetime) -> None:
        """A batch's input must outlive the batch's window."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(files)
                .where(files.c.id == file_id, files.c.expires_at < expires_at)
                .values(expires_at=expires_at)
            )

    async def sweep(self, limit: int = 500) -> int:
        """Delete expired files (rows, then bytes); returns how many went."""
        async with self.engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(select(files.c.id).where(files.c.expires_at <= utcnow()).limit(limit))
                ).scalars()
            )
            if ids:
                await conn.execute(delete(files).where(files.c.id.in_(ids)))
        for file_id in ids:
            with contextlib.suppress(OSError, ValueError):
                await asyncio.to_thread(self.path(file_id).unlink, missing_ok=True)
        return len(ids)
