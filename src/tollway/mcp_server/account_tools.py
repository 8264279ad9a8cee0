"""Balance and usage, for any key; keys and usage by key, for an admin-scope key only.

The admin tools are listed for everyone (a client cannot know its key's scope before it asks), and the
routes they call refuse an inference key: that refusal is the tool error, as it is the REST answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from tollway.mcp_server.gateway import body, opened

DATE = "ISO date or date-time, UTC"


async def balance(ctx: Context) -> dict[str, Any]:
    """Your account's balance in USD (GET /v1/billing/balance)."""
    async with opened(ctx) as gateway:
        return dict(await gateway.json("GET", "/v1/billing/balance"))


async def usage(
    ctx: Context,
    start_date: Annotated[str | None, Field(description=f"From ({DATE}).")] = None,
    end_date: Annotated[str | None, Field(description=f"To ({DATE}).")] = None,
    page: Annotated[int, Field(ge=1, description="Page number.")] = 1,
    limit: Annotated[int, Field(ge=1, le=500, description="Entries per page.")] = 50,
) -> dict[str, Any]:
    """Your account's billed calls, newest first, with their cost (GET /v1/billing/usage)."""
    params = {"startDate": start_date, "endDate": end_date, "page": page, "limit": limit}
    async with opened(ctx) as gateway:
        return dict(await gateway.json("GET", "/v1/billing/usage", params=params))


async def list_keys(ctx: Context) -> dict[str, Any]:
    """Admin-scope key only: your account's active keys with spend and last use, never their secrets
    (GET /v1/keys)."""
    async with opened(ctx) as gateway:
        return dict(await gateway.json("GET", "/v1/keys"))


async def create_key(
    ctx: Context,
    label: Annotated[str | None, Field(max_length=200, description="A name to recognise the key by.")] = None,
    scope: Annotated[
        Literal["inference", "admin"], Field(description="inference: call models only.")
    ] = "inference",
    content_tier: Annotated[Literal["sfw", "uncensored"], Field()] = "sfw",
    expires_at: Annotated[
        str | None, Field(description="ISO date-time after which it stops working.")
    ] = None,
) -> dict[str, Any]:
    """Admin-scope key only: mint a key on your account (POST /v1/keys). Its secret (`key`) is shown
    only in this answer."""
    payload = body(label=label, scope=scope, content_tier=content_tier, expires_at=expires_at)
    async with opened(ctx) as gateway:
        return dict(await gateway.json("POST", "/v1/keys", json=payload))


async def revoke_key(
    ctx: Context, key_id: Annotated[str, Field(min_length=1, description="The key's id (list_keys).")]
) -> dict[str, Any]:
    """Admin-scope key only: revoke one of your account's keys, at once (DELETE /v1/keys/{key_id})."""
    async with opened(ctx) as gateway:
        response = await gateway.call("DELETE", f"/v1/keys/{key_id}")
    return dict(response.json()) if response.content else {"revoked": key_id}


async def usage_by_key(
    ctx: Context,
    start: Annotated[str | None, Field(description=f"From ({DATE}); default 30 days before end.")] = None,
    end: Annotated[str | None, Field(description=f"To ({DATE}); default now.")] = None,
) -> dict[str, Any]:
    """Admin-scope key only: usage grouped by key label, model and UTC day (GET /v1/usage)."""
    async with opened(ctx) as gateway:
        return dict(await gateway.json("GET", "/v1/usage", params={"start": start, "end": end}))


TOOLS = (balance, usage, list_keys, create_key, revoke_key, usage_by_key)
