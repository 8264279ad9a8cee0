"""Venice's `billing/usage-history`: the account's usage entries as a cursor walk in ascending time.

The first page takes the filters (currency, startTimestamp, endTimestamp, pageSize); each page that has
more after it carries `nextCursor`, an opaque token that holds the walk (filters, position, the key it
belongs to) signed with the server's pepper (HMAC-SHA256): a cursor that was altered, has expired (a
day after it was issued) or belongs to another account (or key) is a 400. The walk is pinned when it
starts (the highest usage row id, and the end of the window: now unless endTimestamp is given), so
its pages are stable while new usage is recorded. No HTTP here (api/accounts/billing.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.core.money.usage_reports import venice_entry
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import usage

CURSOR_LIFETIME = timedelta(hours=24)
PAGE_SIZES = (10, 1000)
CURRENCIES = ("USD", "DIEM", "BUNDLED_CREDITS")  # Tollway bills USD only: the others are empty
_MAC_BYTES = 16


@dataclass(frozen=True)
class Walk:
    account_id: str
    key_id: str | None  # an inference key walks only its own usage
    currency: str
    start: str | None  # ISO instants (UTC); start inclusive, end exclusive
    end: str
    max_id: int  # the highest usage row when the walk started: later rows are not in it
    page_size: int
    issued: str
    after_at: str | None = None  # the last entry handed out: (created_at, id)
    after_id: int = 0


def _mac(pepper: bytes, payload: bytes) -> bytes:
    key = hmac.new(pepper, b"tollway-usage-cursor-v1", hashlib.sha256).digest()
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(walk: Walk, pepper: bytes) -> str:
    payload = json.dumps(asdict(walk), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(payload + _mac(pepper, payload)).rstrip(b"=").decode()


def _rejected(why: str) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION,
        f"The cursor was rejected ({why}); restart the walk from the first page.",
        param="cursor",
    )


def decode(cursor: str, pepper: bytes, account_id: str, key_id: str | None) -> Walk:
    """The walk a cursor continues, or a 400: altered, expired, or another account's (or key's)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise _rejected("not a cursor") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(pepper, payload)):
        raise _rejected("not a cursor this server issued")
    walk = Walk(**json.loads(payload))
    if walk.account_id != account_id or walk.key_id != key_id:
        raise _rejected("issued to another caller")
    if as_utc(datetime.fromisoformat(walk.issued)) + CURSOR_LIFETIME < utcnow():
        raise _rejected("expired")
    return walk


async def first_walk(
    engine: AsyncEngine,
    account_id: str,
    key_id: str | None,
    *,
    currency: str,
    start: datetime | None,
    end: datetime | None,
    page_size: int,
) -> Walk:
    async with engine.connect() as conn:
        max_id = (await conn.execute(select(func.coalesce(func.max(usage.c.id), 0)))).scalar_one()
    now = utcnow()
    return Walk(
        account_id=account_id,
        key_id=key_id,
        currency=currency,
        start=start.isoformat() if start else None,
        end=(end or now).isoformat(),
        max_id=int(max_id),
        page_size=page_size,
        issued=now.isoformat(),
    )


async def page(engine: AsyncEngine, walk: Walk) -> tuple[list[dict[str, Any]], Walk | None]:
    """One page of the walk: (Venice entries, the walk after it, or None when nothing is left)."""
    if walk.currency != "USD":
        return [], None
    c = usage.c
    where = [c.account_id == walk.account_id, c.id <= walk.max_id, c.created_at < _at(walk.end)]
    if walk.key_id is not None:
        where.append(c.key_id == walk.key_id)
    if walk.start is not None:
        where.append(c.created_at >= _at(walk.start))
    if walk.after_at is not None:
        at = _at(walk.after_at)
        where.append(or_(c.created_at > at, and_(c.created_at == at, c.id > walk.after_id)))
    query = select(usage).where(*where).order_by(c.created_at, c.id).limit(walk.page_size + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    if len(rows) <= walk.page_size:
        return [venice_entry(row) for row in rows], None
    rows = rows[: walk.page_size]
    last = rows[-1]
    following = Walk(
        **{
            **asdict(walk),
            "after_at": as_utc(last.created_at).isoformat(),
            "after_id": int(last.id),
            "issued": utcnow().isoformat(),  # each cursor lives a day from its page
        }
    )
    return [venice_entry(row) for row in rows], following


def _at(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value))
