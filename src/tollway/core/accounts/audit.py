"""The admin audit log: who (a key id, or "operator"), did what, to which account and object, when, from
which client IP. Callers pass ids and settings only: never a secret, a prompt or an answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import as_utc, utcnow
from tollway.store.tables import admin_audit


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the calling key's id ("operator" for the operator key) and the client's IP."""

    who: str
    client_ip: str | None = None


CLI = Actor("cli")  # the `tollway` command on the server, with the database's credentials


async def record(
    engine: AsyncEngine,
    actor: Actor,
    action: str,
    *,
    account_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(admin_audit).values(
                actor=actor.who,
                action=action,
                account_id=account_id,
                target=target,
                details=details,
                client_ip=actor.client_ip,
                created_at=utcnow(),
            )
        )


async def entries(
    engine: AsyncEngine, *, account_id: str | None = None, before: int | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; `before` is the cursor (an entry id). Returns the page and the next cursor."""
    query = select(admin_audit).order_by(admin_audit.c.id.desc()).limit(limit + 1)
    if account_id is not None:
        query = query.where(admin_audit.c.account_id == account_id)
    if before is not None:
        query = query.where(admin_audit.c.id < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    page = [
        {
            "id": r.id,
            "object": "audit_entry",
            "actor": r.actor,
            "action": r.action,
            "account_id": r.account_id,
            "target": r.target,
            "details": r.details,
            "client_ip": r.client_ip,
            "created_at": as_utc(r.created_at).isoformat(),
        }
        for r in rows[:limit]
    ]
    return page, (page[-1]["id"] if len(rows) > limit else None)
