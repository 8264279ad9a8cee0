"""Random operation sequences against a shadow model of the money (DESIGN §4), on both databases.

Each example uses a fresh account; the engine lives on one asyncio.Runner for the whole test so the
(sync) Hypothesis loop can drive the async ledger without pytest-asyncio in the way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import assert_invariants
from tollway.base.clock import utcnow
from tollway.core.access.accounts import Accounts
from tollway.core.money.ledger import Ledger
from tollway.errors import ErrorCode, TollwayError
from tollway.store.db import create_engine

REFERENCES = st.sampled_from(["a", "b", "c", "d", "e"])  # few, so duplicates are common
INDEX = st.integers(min_value=0, max_value=50)

OPS = st.one_of(
    st.tuples(st.just("credit"), REFERENCES, st.integers(min_value=1, max_value=10_000)),
    st.tuples(st.just("refund"), REFERENCES, st.integers(min_value=1, max_value=3_000)),
    # Small holds too, so that budget leases (several holds each) fit the balance often.
    st.tuples(st.just("reserve"), st.one_of(st.integers(0, 300), st.integers(min_value=0, max_value=6_000))),
    st.tuples(st.just("settle"), INDEX, st.integers(min_value=0, max_value=9_000)),
    st.tuples(st.just("late_settle"), INDEX, st.integers(min_value=0, max_value=9_000)),
    st.tuples(st.just("release"), INDEX),
    st.tuples(st.just("release_closed"), INDEX),
    st.tuples(st.just("sweep")),
)


@dataclass
class Shadow:
    balance: int = 0
    open: dict[str, int] = field(default_factory=dict)  # request id -> held amount
    swept: list[str] = field(default_factory=list)  # released by the sweeper, never settled
    closed: list[str] = field(default_factory=list)
    applied: set[tuple[str, str]] = field(default_factory=set)

    @property
    def reserved(self) -> int:
        return sum(self.open.values())


def pick(items: list[str], index: int) -> str | None:
    return items[index % len(items)] if items else None


async def run_ops(ledger: Ledger, accounts: Accounts, ops: list[tuple[object, ...]]) -> int:
    """Runs the operations against the shadow model; returns how many holds were carved from leases."""
    account = (await accounts.create("property")).id
    carved = 0
    model = Shadow()
    far_future = utcnow() + timedelta(days=3650)
    for step, op in enumerate(ops):
        kind = op[0]
        if kind in ("credit", "refund"):
            _, reference, amount = op
            applied = await ledger.credit(account, amount, reference=reference, kind=kind)  # type: ignore[arg-type]
            expected = (kind, reference) not in model.applied
            assert applied is expected, op
            if expected:
                model.applied.add((kind, reference))  # type: ignore[arg-type]
                model.balance += amount  # type: ignore[operator]
        elif kind == "reserve":
            amount = op[1]
            request_id = f"{account}-{step}"
            available = model.balance - model.reserved
            if amount <= available:  # type: ignore[operator]
                reservation = await ledger.reserve(account, request_id, amount)  # type: ignore[arg-type]
                if request_id in ledger.leases._carves:  # a leased hold shows it as of its lease
                    carved += 1
                else:
                    assert reservation.available_before_nano == available
                model.open[request_id] = amount  # type: ignore[assignment]
            else:
                with pytest.raises(TollwayError) as info:
                    await ledger.reserve(account, request_id, amount)  # type: ignore[arg-type]
                assert info.value.code is ErrorCode.INSUFFICIENT_BALANCE
        elif kind in ("settle", "late_settle"):
            _, index, cost = op
            request_id = pick(list(model.open) if kind == "settle" else model.swept, index)  # type: ignore[arg-type]
            if request_id is None:
                continue
            # What the account holds for this request: its hold (if still open) plus what is available.
            room = model.open.get(request_id, 0) + model.balance - model.reserved
            expected = max(0, min(cost, room))  # type: ignore[type-var]
            model.open.pop(request_id, None)
            if kind == "late_settle":
                model.swept.remove(request_id)
            assert await ledger.settle(account, request_id, cost) == expected, op  # type: ignore[arg-type]
            model.balance -= expected
            model.closed.append(request_id)
        elif kind == "release":
            request_id = pick(list(model.open), op[1])  # type: ignore[arg-type]
            if request_id is None:
                continue
            assert await ledger.release(request_id) is True
            del model.open[request_id]
            model.closed.append(request_id)
        elif kind == "release_closed":
            request_id = pick(model.closed + model.swept, op[1])  # type: ignore[arg-type]
            if request_id is None:
                continue
            assert await ledger.release(request_id) is False
        elif kind == "sweep":
            released = 0
            while swept := await ledger.sweep(now=far_future):
                released += swept
            # A hold carved from this (live) process's lease is not swept: the process renews its leases.
            per_call = [r for r in model.open if r not in ledger.leases._carves]
            assert released >= len(per_call)  # other tests' leftovers may be swept too
            model.swept.extend(per_call)
            model.open = {r: amount for r, amount in model.open.items() if r not in per_call}
        balance, reserved = await assert_invariants(ledger, ledger._engine, account)
        assert balance == model.balance, (step, op)
        if ledger.leases.carving:  # the lease's room is reserved too, beside the open holds
            assert reserved >= model.reserved, (step, op)
        else:
            assert reserved == model.reserved, (step, op)
    for request_id in list(model.open):  # leave nothing for the next example's sweeps
        assert await ledger.release(request_id) is True
    return carved


@pytest.mark.parametrize("leases", [False, True], ids=["per-call holds", "budget leases"])
def test_random_operation_sequences_keep_the_books(db_url: str, leases: bool) -> None:
    """With budget leases the same model holds: every hold that fits the available balance is
    granted (the process gives its lease's room back first), every other is a 402, every charge is
    what a per-call hold would have allowed, and the balance matches to the nano."""
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    with asyncio.Runner() as runner:
        engine = create_engine(db_url)
        ledger = Ledger(engine, budget_leases=leases)
        accounts = Accounts(engine, ledger)
        carved: list[int] = []

        @settings(
            max_examples=25 if backend == "sqlite" else 10,
            deadline=None,
            derandomize=False,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(ops=st.lists(OPS, min_size=10, max_size=40))
        # One sequence that surely leases, so the leased run never passes without carving a hold.
        @example(
            ops=[
                ("credit", "a", 10_000),
                ("reserve", 100),
                ("reserve", 200),
                ("settle", 0, 150),
                ("release", 0),
            ]
        )
        def check(ops: list[tuple[object, ...]]) -> None:
            carved.append(runner.run(run_ops(ledger, accounts, ops)))

        try:
            check()
            assert (sum(carved) > 0) is leases  # the leased runs did carve holds from leases
        finally:
            runner.run(ledger.aclose())
            runner.run(engine.dispose())


def test_shadow_model_catches_a_wrong_balance(db_url: str) -> None:
    """The property test can fail: a ledger that overcharges by one nano is caught."""

    class Overcharging(Ledger):
        async def settle(self, account_id, request_id, cost_nano, usage_row=None):  # type: ignore[no-untyped-def]
            return await super().settle(account_id, request_id, cost_nano + 1, usage_row)

    async def scenario() -> None:
        engine = create_engine(db_url)
        try:
            ledger = Overcharging(engine)
            ops = [("credit", "a", 1_000), ("reserve", 500), ("settle", 0, 100)]
            with pytest.raises(AssertionError):
                await run_ops(ledger, Accounts(engine, ledger), ops)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
