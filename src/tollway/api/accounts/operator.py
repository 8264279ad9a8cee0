"""The operator's business routes (issue 24): find, edit, suspend and resume accounts; adjust balances
with a reason; the audit log; characters beyond the catalog file's (core/catalog/character_store.py).
Thin: the rules are core/. Need the operator key; every change is written to the audit log with the
acting key and the client's IP."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import ConfigDict, field_validator
from starlette.responses import Response

from tollway.api.accounts.keys import audit_actor as actor
from tollway.api.auth import operator_caller
from tollway.api.http import JSON, read_json
from tollway.api.spec import BY_ID, KEYED, WRITES, documented
from tollway.core.accounts import audit
from tollway.core.accounts.adjustments import Adjustment, AdjustmentFields, Adjustments
from tollway.core.accounts.directory import AccountDirectory, AccountPatch, known_plans
from tollway.core.caller import Caller
from tollway.core.catalog import character_store
from tollway.core.catalog.character_store import CharacterFields, NewCharacter
from tollway.core.inference.schemas import validate
from tollway.core.money.prices import usd_to_nano
from tollway.errors import ErrorCode, TollwayError

router = APIRouter(prefix="/admin", tags=["operator"])
IDEMPOTENCY_DOC = "Required: the adjustment is applied once per key (retry with the same key safely)."


class AdjustmentBody(AdjustmentFields):
    model_config = ConfigDict(extra="forbid")

    @field_validator("amount_usd", mode="before")
    @classmethod
    def _string_only(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError('must be a decimal string such as "12.50" (exact amounts only)')
        return value


def directory(request: Request) -> AccountDirectory:
    services = request.app.state.services
    return AccountDirectory(services.engine, services.accounts, services.keys)


def page_size(limit: str | None) -> int:
    if limit is None:
        return 50
    if not limit.isdigit() or not 1 <= int(limit) <= 200:
        raise TollwayError(
            ErrorCode.VALIDATION, "`limit` must be a whole number from 1 to 200.", param="limit"
        )
    return int(limit)


@router.get(
    "/accounts", summary="Accounts: search by id or name, paged by cursor", **documented(errors=KEYED)
)
async def list_accounts(
    request: Request,
    q: str | None = Query(None, max_length=200, description="an account id, or part of a name (any case)"),
    after: str | None = Query(None, max_length=40, description="the cursor: `next_cursor` of the last page"),
    limit: str | None = Query(None, description="accounts per page, 1..200, default 50"),
    who: Caller = Depends(operator_caller),
) -> Response:
    found, cursor = await directory(request).page(query=q, after=after, limit=page_size(limit))
    data = [a.public() for a in found]
    return JSON({"object": "list", "data": data, "has_more": cursor is not None, "next_cursor": cursor})


@router.patch(
    "/accounts/{account_id}",
    summary="Edit an account: name, plan, content tiers, age verification, suspension, limits",
    **documented(body=AccountPatch, errors=WRITES),
)
async def edit_account(request: Request, account_id: str, who: Caller = Depends(operator_caller)) -> Response:
    patch = validate(AccountPatch, await read_json(request))
    services = request.app.state.services
    plans = known_plans(services.pipeline.rate_gate)
    changes = await directory(request).edit(account_id, patch, plans)
    if changes:
        await audit.record(
            services.engine, actor(request, who), "account.edit", account_id=account_id, details=changes
        )
    return JSON((await services.accounts.get(account_id)).public())


async def _suspension(request: Request, account_id: str, who: Caller, suspended: bool) -> Response:
    services = request.app.state.services
    changes = await directory(request).edit(account_id, AccountPatch(suspended=suspended), ())
    action = "account.suspend" if suspended else "account.resume"
    await audit.record(services.engine, actor(request, who), action, account_id=account_id, details=changes)
    return JSON((await services.accounts.get(account_id)).public())


@router.post(
    "/accounts/{account_id}/suspend",
    summary="Suspend an account: its keys get 403 ACCOUNT_SUSPENDED at once",
    **documented(errors=BY_ID),
)
async def suspend(request: Request, account_id: str, who: Caller = Depends(operator_caller)) -> Response:
    return await _suspension(request, account_id, who, True)


@router.post(
    "/accounts/{account_id}/resume", summary="Resume a suspended account", **documented(errors=BY_ID)
)
async def resume(request: Request, account_id: str, who: Caller = Depends(operator_caller)) -> Response:
    return await _suspension(request, account_id, who, False)


@router.post(
    "/accounts/{account_id}/adjustments",
    summary="Credit, debit or refund a balance with a reason (Idempotency-Key required)",
    **documented(body=AdjustmentBody, errors=(*WRITES, 409)),
)
async def adjust(
    request: Request,
    account_id: str,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", description=IDEMPOTENCY_DOC),
    who: Caller = Depends(operator_caller),
) -> Response:
    body = validate(AdjustmentBody, await read_json(request))
    if not idempotency_key or len(idempotency_key) > 100 or not idempotency_key.isprintable():
        raise TollwayError(
            ErrorCode.VALIDATION,
            "Send an `Idempotency-Key` header (1 to 100 printable characters): the adjustment is applied "
            "once per key, so a retry with the same key is safe.",
            param="Idempotency-Key",
        )
    services = request.app.state.services
    by = actor(request, who)
    change = Adjustment(account_id, body.type, usd_to_nano(body.amount_usd), body.reason, by.who)
    done = await Adjustments(services.engine, services.accounts).apply(change, idempotency_key)
    if done["applied"]:
        details = {"type": body.type, "amount_usd": done["amount_usd"], "reference": done["reference"]}
        await audit.record(services.engine, by, "balance.adjust", account_id=account_id, details=details)
    account = (await services.accounts.get(account_id)).public()
    return JSON({**done, "balance_usd": account["balance_usd"], "available_usd": account["available_usd"]})


@router.get(
    "/accounts/{account_id}/adjustments",
    summary="An account's balance adjustments, newest first",
    **documented(errors=BY_ID),
)
async def adjustments_of(
    request: Request, account_id: str, who: Caller = Depends(operator_caller)
) -> Response:
    services = request.app.state.services
    await services.accounts.get(account_id)
    data = await Adjustments(services.engine, services.accounts).of(account_id)
    return JSON({"object": "list", "data": data})


@router.get("/audit", summary="The audit log of admin actions, newest first", **documented(errors=KEYED))
async def audit_log(
    request: Request,
    account_id: str | None = Query(None, max_length=40, description="only this account's entries"),
    before: str | None = Query(None, description="the cursor: `next_cursor` of the last page"),
    limit: str | None = Query(None, description="entries per page, 1..200, default 50"),
    who: Caller = Depends(operator_caller),
) -> Response:
    if before is not None and not before.isdigit():
        raise TollwayError(ErrorCode.VALIDATION, "`before` must be a `next_cursor` value.", param="before")
    data, cursor = await audit.entries(
        request.app.state.services.engine,
        account_id=account_id,
        before=int(before) if before else None,
        limit=page_size(limit),
    )
    return JSON({"object": "list", "data": data, "has_more": cursor is not None, "next_cursor": cursor})


# -- characters (issue 23): the operator's, beside the catalog YAML's; Venice's GET characters lists both --


@router.get(
    "/characters",
    summary="Characters: the catalog file's and the admin API's, with every field and their `source`",
    tags=["characters"],
    **documented(errors=KEYED),
)
async def list_characters(request: Request, who: Caller = Depends(operator_caller)) -> Response:
    return JSON({"object": "list", "data": character_store.admin_view(request.app.state.services.catalog)})


@router.post(
    "/characters",
    summary="Create a character (stored; chat names it with venice_parameters.character_slug)",
    tags=["characters"],
    **documented(body=NewCharacter, errors=(*WRITES, 409), status=201),
)
async def create_character(request: Request, who: Caller = Depends(operator_caller)) -> Response:
    body = validate(NewCharacter, await read_json(request))
    services = request.app.state.services
    character = await character_store.create(services.engine, services.catalog, body)
    fields = sorted(body.model_fields_set)  # names only: a system prompt is content, never audited
    await audit.record(
        services.engine, actor(request, who), "character.create", target=body.slug, details={"fields": fields}
    )
    return JSON(character, status_code=201)


@router.patch(
    "/characters/{slug}",
    summary="Edit a stored character: a field left out is left as it is",
    tags=["characters"],
    **documented(body=CharacterFields, errors=(*WRITES, 409)),
)
async def edit_character(request: Request, slug: str, who: Caller = Depends(operator_caller)) -> Response:
    patch = validate(CharacterFields, await read_json(request))
    services = request.app.state.services
    character = await character_store.edit(services.engine, services.catalog, slug, patch)
    fields = sorted(patch.model_fields_set)
    await audit.record(
        services.engine, actor(request, who), "character.edit", target=slug, details={"fields": fields}
    )
    return JSON(character)


@router.delete(
    "/characters/{slug}",
    summary="Delete a stored character (the catalog file's are edited in the file)",
    tags=["characters"],
    **documented(errors=(*BY_ID, 409)),
)
async def delete_character(request: Request, slug: str, who: Caller = Depends(operator_caller)) -> Response:
    services = request.app.state.services
    await character_store.remove(services.engine, services.catalog, slug)
    await audit.record(services.engine, actor(request, who), "character.delete", target=slug)
    return JSON({"object": "character", "slug": slug, "deleted": True})
