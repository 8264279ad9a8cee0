"""The one charge path (core/admission.py): a hold ends exactly once, an escaping error ends it, and
the tier rule and the operator key are refused before anything is held. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.helpers import assert_invariants
from tollway.base.config import ModelConfig
from tollway.core.access.accounts import Accounts
from tollway.core.admission import Hold, admit, check_tier
from tollway.core.caller import Caller, KeyLimit
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError
from tollway.store.tables import usage


def _model(tier: str = "standard") -> CatalogModel:
    config = ModelConfig.model_validate(
        {"id": "m", "routes": [{"provider": "p", "model": "x"}], "pricing": {"input": "1"}, "tier": tier}
    )
    return CatalogModel(config, Decimal(1))


async def _caller(accounts: Accounts, **fields: Any) -> Caller:
    account = await accounts.create("admission", credit_nano=10_000)
    return Caller("inference", key_id="key_1", account_id=account.id, label="ci", **fields)


async def _hold(ledger: Ledger, caller: Caller, request_id: str, amount: int = 4_000) -> Hold:
    return await admit(
        ledger, None, caller, request_id=request_id, model=_model(), endpoint="chat", estimate_nano=amount
    )


async def _rows(engine: AsyncEngine, request_id: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(usage).where(usage.c.request_id == request_id))).all())


async def test_a_hold_ends_once_and_its_row_says_how(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    hold = await _hold(ledger, caller, "req_settle")
    assert hold.balance_before_nano is None  # an inference key without a limit sees no balance
    assert await ledger.balances(caller.account_id) == (10_000, 4_000)
    assert await hold.settle(2_500, provider="p", units=3) == 2_500
    with pytest.raises(RuntimeError):
        await hold.release(502)
    [row] = await _rows(engine, "req_settle")
    assert (row.provider, row.units, row.cost_nano, row.usage_source, row.outcome, row.status_code) == (
        "p",
        3,
        2_500,
        "provider",
        "completed",
        200,
    )
    assert (row.key_id, row.key_label, row.model, row.endpoint) == ("key_1", "ci", "m", "chat")
    assert await assert_invariants(ledger, engine, caller.account_id) == (7_500, 0)


async def test_an_error_escaping_the_hold_releases_it_with_its_status(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    with pytest.raises(TollwayError):
        async with await _hold(ledger, caller, "req_failed"):
            raise TollwayError(ErrorCode.UPSTREAM_TIMEOUT)
    [row] = await _rows(engine, "req_failed")
    assert (row.provider, row.cost_nano, row.usage_source, row.outcome, row.status_code) == (
        None,
        0,
        "none",
        "upstream_error",
        504,
    )
    # Anything else (a cancellation): freed, with no row.
    with pytest.raises(asyncio.CancelledError):
        async with await _hold(ledger, caller, "req_cancelled"):
            raise asyncio.CancelledError
    assert await _rows(engine, "req_cancelled") == []
    assert await assert_invariants(ledger, engine, caller.account_id) == (10_000, 0)


async def test_a_resumed_hold_ends_the_hold_taken_earlier(
    engine: AsyncEngine, ledger: Ledger, accounts_service: Accounts
) -> None:
    caller = await _caller(accounts_service)
    assert caller.account_id is not None
    taken = await _hold(ledger, caller, "job_1")
    resumed = Hold.resume(
        ledger,
        account_id=caller.account_id,
        request_id="job_1",
        key_id="key_1",
        key_label="ci",
        model_id="m",
        endpoint="video_queue",
        began=taken.began,
    )
    await resumed.release(502, outcome="failed", provider="q")
    [row] = await _rows(engine, "job_1")
    assert (row.provider, row.outcome, row.endpoint, row.status_code) == ("q", "failed", "video_queue", 502)
    assert await assert_invariants(ledger, engine, caller.account_id) == (10_000, 0)


@pytest.mark.parametrize(
    ("tier", "age_verified", "code"),
    [
        ("sfw", False, ErrorCode.CONTENT_TIER_FORBIDDEN),
        ("uncensored", False, ErrorCode.AGE_VERIFICATION_REQUIRED),
    ],
)
async def test_the_tier_rule_is_refused_before_anything_is_held(
    engine: AsyncEngine,
    ledger: Ledger,
    accounts_service: Accounts,
    tier: str,
    age_verified: bool,
    code: ErrorCode,
) -> None:
    caller = await _caller(accounts_service, content_tier=tier, age_verified=age_verified)
    assert caller.account_id is not None
    with pytest.raises(TollwayError) as refused:
        await admit(
            ledger,
            None,
            caller,
            request_id="req_x",
            model=_model("uncensored"),
            endpoint="chat",
            estimate_nano=1,
        )
    assert (refused.value.code, refused.value.param) == (code, "model")
    assert await assert_invariants(ledger, engine, caller.account_id) == (10_000, 0)
    check_tier(Caller("inference", content_tier="uncensored", age_verified=True), _model("uncensored"))
    check_tier(Caller("inference"), _model())


async def test_the_operator_key_holds_nothing(ledger: Ledger) -> None:
    with pytest.raises(TollwayError) as refused:
        await admit(
            ledger, None, Caller("operator"), request_id="r", model=_model(), endpoint="chat", estimate_nano=1
        )
    assert refused.value.code is ErrorCode.UNAUTHORIZED
    # api/auth.py refuses it first over HTTP; this is the path's own guard (batch lines, MCP, RPC).
    assert refused.value.message == "The operator key manages accounts; mint a key to call models."


async def test_the_balance_a_hold_shows_is_the_keys_or_the_admins_or_none(
    ledger: Ledger, accounts_service: Accounts
) -> None:
    """Issue 19 item 9: what the balance headers may show, from the hold (admission.shown_balance)."""
    plain = await _caller(accounts_service)
    admin = Caller("admin", key_id="key_a", account_id=plain.account_id, label="ops")
    limited = Caller(
        "inference", key_id="key_l", account_id=plain.account_id, key_limit=KeyLimit("key_l", 3_000, "day")
    )
    generous = Caller(
        "admin", key_id="key_g", account_id=plain.account_id, key_limit=KeyLimit("key_g", 50_000, "day")
    )
    assert (await _hold(ledger, plain, "req_b1", 1_000)).balance_before_nano is None
    assert (await _hold(ledger, admin, "req_b2", 1_000)).balance_before_nano == 9_000
    first = await _hold(ledger, limited, "req_b3", 1_000)
    assert first.balance_before_nano == 3_000  # the key's limit, not the account's 8,000
    assert (await _hold(ledger, limited, "req_b4", 1_000)).balance_before_nano == 2_000
    # A limit above what the account has left shows what the account has (10,000 − 4 × 1,000 held).
    assert (await _hold(ledger, generous, "req_b5", 1_000)).balance_before_nano == 6_000
    await first.settle(500, provider="p")
    assert (await _hold(ledger, limited, "req_b6", 1_000)).balance_before_nano == 1_500
