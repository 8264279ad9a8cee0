"""Console sessions: an admin-scope key (or the operator key) is exchanged once for a session cookie.

The key is never stored, in the browser or here: the `console_sessions` row keeps only HMAC(pepper, token)
and which key signed in. Every request re-reads that key, so revoking it (or its expiry) ends the
session at once. The CSRF token of a session is HMAC(pepper, "csrf:" + token): nothing more to store,
and it cannot be derived without the cookie, which scripts cannot read (HttpOnly).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import delete, insert, select

from tollway.base.clock import as_utc, utcnow
from tollway.core.access.keys import Keys
from tollway.core.accounts import audit
from tollway.core.caller import Caller
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import console_sessions

COOKIE = "tollway_console"
LIFETIME = timedelta(hours=8)


class SignInRequired(Exception):
    """No valid session: the page redirects to the sign-in form."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the console: the caller the session acts as, and its CSRF token."""

    caller: Caller
    csrf: str

    @property
    def account_id(self) -> str:
        assert self.caller.account_id is not None
        return self.caller.account_id


def _keys(request: Request) -> Keys:
    keys: Keys = request.app.state.services.keys
    return keys


def csrf_of(keys: Keys, token: str) -> str:
    return keys.hash("csrf:" + token)


async def sign_in(request: Request, raw_key: str) -> tuple[str, Caller]:
    """A new session for an admin-scope or operator key: (token for the cookie, caller). 401 otherwise."""
    keys = _keys(request)
    caller = await keys.authenticate(raw_key.strip())
    if not caller.is_operator and caller.scope != "admin":
        raise TollwayError(
            ErrorCode.UNAUTHORIZED,
            "The console needs an admin-scope key of your account (or the operator key); "
            "inference keys only call models.",
        )
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with request.app.state.services.engine.begin() as conn:
        await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
        await conn.execute(
            insert(console_sessions).values(
                token_hash=keys.hash(token),
                scope=caller.scope,
                key_id=caller.key_id,
                account_id=caller.account_id,
                created_at=now,
                expires_at=now + LIFETIME,
            )
        )
    return token, caller


async def viewer(request: Request) -> Viewer:
    """The signed-in viewer, or SignInRequired (expired, signed out, or the key revoked since)."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        raise SignInRequired
    keys = _keys(request)
    async with request.app.state.services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(console_sessions).where(console_sessions.c.token_hash == keys.hash(token))
            )
        ).first()
    if row is None or as_utc(row.expires_at) <= utcnow():
        raise SignInRequired
    if row.scope == "operator":
        caller = Caller(scope="operator")
    else:
        try:
            caller = await keys.caller_of(row.key_id)
        except TollwayError as exc:
            raise SignInRequired from exc
    return Viewer(caller, csrf_of(keys, token))


async def sign_out(request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        async with request.app.state.services.engine.begin() as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.token_hash == _keys(request).hash(token))
            )


def check_csrf(who: Viewer, sent: str | None) -> None:
    """Every form carries the session's token; a form without it (or another's) is refused, 403."""
    if not sent or not hmac.compare_digest(sent, who.csrf):
        raise TollwayError(
            ErrorCode.UNAUTHORIZED,
            "This form is missing its security token (CSRF) or it is stale: reload the page and try again.",
        )


async def audited(
    request: Request,
    who: Viewer,
    action: str,
    *,
    account_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write a console action to the admin audit log as the API route doing it writes it: the acting key
    (or "operator"), the client's IP, the action's name and the same details (never a secret)."""
    actor = audit.Actor(who.caller.key_id or "operator", request.client.host if request.client else None)
    await audit.record(
        request.app.state.services.engine,
        actor,
        action,
        account_id=account_id,
        target=target,
        details=details,
    )
