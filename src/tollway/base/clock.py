"""Time in one place, so tests and periods agree on UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything Tollway stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def period_key(period: str, now: datetime) -> str:
    """The key_spend bucket of a consumption limit period, in UTC."""
    if period == "day":
        return now.strftime("d%Y-%m-%d")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"w{year}-{week:02d}"
    if period == "month":
        return now.strftime("m%Y-%m")
    return "total"
