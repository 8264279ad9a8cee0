"""A key's consumption limit holds on every paid route: a customer key cannot spend past it anywhere.

For each route, the hold the call needs is learnt first (the `required` of a 402 on an account
with no money; a job's quote from the oracle). Then, on an account with plenty of money:
- a key whose limit is one nano-USD below that hold is refused with KEY_LIMIT_EXCEEDED before any
  work: nothing charged, nothing held, nothing spent on the key, no upstream call;
- a key whose limit is exactly the hold succeeds, and the key's spend equals the account's charge.
A route that leaves the key limit out of its hold, or holds a different amount against the key
than against the account, fails here.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.money.harness import NANO, Money
from tests.money.test_oracle import JOB_KINDS, Case, expected, post

CREDIT = 100 * NANO
TASK_KINDS = ("image_task", "video_task")  # the seed-001 envelope: no `required`, its own codes

ROUTES: dict[str, Case] = {
    case.kind + ("-stream" if case.params.get("stream") else ""): case
    for case in (
        Case(
            "chat",
            {
                "model": "m-chat-markup",
                "stream": False,
                "usage": {"prompt_tokens": 30, "completion_tokens": 20},
            },
        ),
        Case(
            "chat", {"model": "m-chat", "stream": True, "usage": {"prompt_tokens": 9, "completion_tokens": 3}}
        ),
        Case("embeddings", {"tokens": 5}),  # within the estimate: the key is held what it is charged
        Case("image", {"width": 1536, "height": 1024, "quality": "hd", "n": 2}),
        Case("venice_image", {"variants": 2}),
        Case("upscale", {"scale": "3"}),
        Case("flat_image", {"model": "m-edit"}),
        Case("speech", {"input": "Every character is priced."}),
        Case("transcription", {"seconds": 2}),
        Case("video_queue", {"seconds": 1, "resolution": "480p", "audio": True}),
        Case("music", {"seconds": 2}),
        Case("long_speech", {"input": "A long speech job."}),
        Case("image_task", {"n": 2, "resolution": "2K", "quality": "hd", "input": False}),
        Case("video_task", {"seconds": 1, "audio": True}),
    )
}


def _usd(nano: int) -> str:
    return str(Decimal(nano) / NANO)


def _hold_needed(money: Money, case: Case) -> int:
    if case.kind in TASK_KINDS:
        return expected(case)  # a job holds exactly its quote
    poor, poor_key = money.funded(1)
    refused = post(money, poor_key, case)
    assert refused.status_code == 402, refused.text
    assert money.balances(poor) == (1, 0)
    return int(Decimal(refused.json()["error"]["required"]) * NANO)


def _key_spend(money: Money, account: str) -> tuple[int, int]:
    rows = money.rows(
        "select coalesce(sum(s.spent_nano), 0), coalesce(sum(s.reserved_nano), 0) from key_spend s "
        "join api_keys k on k.id = s.key_id where k.account_id = ?",
        account,
    )
    return int(rows[0][0]), int(rows[0][1])


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_key_limit_caps_every_paid_route(fresh: Money, route: str) -> None:
    case = ROUTES[route]
    hold = _hold_needed(fresh, case)
    assert hold >= expected(case) > 0
    fresh.reset_fake()

    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(hold - 1), "period": "day"})
    refused = post(fresh, key, case)
    assert refused.status_code == 402, refused.text
    error = refused.json()["error"]
    if case.kind in TASK_KINDS:
        assert error["code"] == "INSUFFICIENT_CREDITS"
    else:
        assert (error["code"], error["limit_source"]) == ("KEY_LIMIT_EXCEEDED", "key_limit")
        assert int(Decimal(error["required"]) * NANO) == hold
        assert int(Decimal(error["available"]) * NANO) == hold - 1
    assert fresh.balances(account) == (CREDIT, 0)
    assert _key_spend(fresh, account) == (0, 0)
    assert fresh.fake_requests() == []

    account, key = fresh.funded(CREDIT, consumption_limit={"usd": _usd(hold), "period": "total"})
    fresh.reset_fake()
    response = post(fresh, key, case)
    assert response.status_code in (200, 201, 202), response.text
    if case.kind in JOB_KINDS:
        assert _key_spend(fresh, account) == (0, hold)  # the quote is held against the key too
    fresh.settle_until(account, 1, seconds=60)
    price = expected(case)
    assert fresh.charged(account) == price
    assert _key_spend(fresh, account) == (price, 0)
    assert fresh.balances(account) == (CREDIT - price, 0)
