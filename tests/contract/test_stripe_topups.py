"""Card top-ups by Stripe Checkout (issue 25) on a real server, SQLite and PostgreSQL.

The official `stripe` library in the server talks to tests/fakes/stripe_api.py (the outside world, at
the wire protocol); the webhook gets real signed events, signed as Stripe signs them
(t=<unix>,v1=HMAC-SHA256(secret, f"{t}.{payload}")). After every case the ledger is checked exactly:
balance and reserved equal the sums of the account's ledger entries, and the Stripe entries are the
ones expected, no more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway, postgres_database, start_tollway
from tests.fakes.stripe_api import SECRET_KEY
from tests.support.databases import drop_postgres_database, query
from tests.support.processes import ServerProcess, start_fake

pytestmark = pytest.mark.slow
WEBHOOK_SECRET = "whsec_test_tollway_contract"
NANO = 1_000_000_000
CENT = 10_000_000


@dataclass
class Card:
    tollway: Tollway
    stripe: ServerProcess

    def session(self, session_id: str) -> dict[str, Any]:
        stats = httpx2.get(f"{self.stripe.base_url}/_fake/stats").json()
        return dict(stats["sessions"][session_id])


@pytest.fixture(scope="module")
def stripe_api() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.stripe_api") as process:
        yield process


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def card(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    stripe_api: ServerProcess,
) -> Iterator[Card]:
    tmp = tmp_path_factory.mktemp(f"stripe-{request.param}")
    database_url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    env = {
        "TOLLWAY_STRIPE_SECRET_KEY": SECRET_KEY,
        "TOLLWAY_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TOLLWAY_STRIPE_API_BASE": stripe_api.base_url,
        "TOLLWAY_STRIPE_SUCCESS_URL": "https://tollway.test/console?topup=ok",
        "TOLLWAY_STRIPE_CANCEL_URL": "https://tollway.test/console?topup=cancelled",
        "TOLLWAY_STRIPE_MIN_USD": "5",
        "TOLLWAY_STRIPE_MAX_USD": "500",
        "TOLLWAY_LOG_LEVEL": "info",
        "TOLLWAY_REDEMPTION_CODES": "true",  # for the console's Billing page: two rails' sources
    }
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    try:
        yield Card(Tollway(process, database_url, fake_upstream.base_url), stripe_api)
    finally:
        process.stop()
        if request.param == "postgresql":
            drop_postgres_database(database_url)


# What Stripe would send -----------------------------------------------------------------------------


def signed(payload: str, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": obj},
        }
    )


def completed(session: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The session as Stripe sends it once paid (the fake's record, paid, its PaymentIntent set)."""
    return {
        **{k: v for k, v in session.items() if not k.startswith("fake_")},
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": session["fake_payment_intent"],
        **changes,
    }


def charge(session: dict[str, Any], refunded_cents: int, *, metadata: bool = True) -> dict[str, Any]:
    return {
        "id": f"ch_test_{uuid.uuid4().hex[:16]}",
        "object": "charge",
        "amount": session["amount_total"],
        "amount_refunded": refunded_cents,
        "currency": "usd",
        "payment_intent": session["fake_payment_intent"],
        "metadata": session["payment_intent_metadata"] if metadata else {},
        "refunded": refunded_cents == session["amount_total"],
    }


def dispute(session: dict[str, Any], cents: int) -> dict[str, Any]:
    return {
        "id": f"dp_test_{uuid.uuid4().hex[:16]}",
        "object": "dispute",
        "amount": cents,
        "currency": "usd",
        "charge": f"ch_test_{uuid.uuid4().hex[:16]}",
        "payment_intent": session["fake_payment_intent"],
        "metadata": {},
        "reason": "fraudulent",
        "status": "needs_response",
    }


# Driving Tollway ------------------------------------------------------------------------------------


def deliver(card: Card, payload: str, signature: str | None = None) -> httpx2.Response:
    headers = {"content-type": "application/json; charset=utf-8"}
    headers["stripe-signature"] = signed(payload) if signature is None else signature
    if signature == "":
        del headers["stripe-signature"]
    return httpx2.post(
        f"{card.tollway.url}/v1/webhooks/stripe", content=payload.encode(), headers=headers, timeout=30
    )


def top_up(card: Card, key: str, amount: Any) -> httpx2.Response:
    return httpx2.post(
        f"{card.tollway.url}/v1/billing/top-up",
        json={"amount_usd": amount},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def started(card: Card, credit: str = "0", amount: str = "10") -> tuple[str, str, dict[str, Any]]:
    """An account with `credit`, its key, and a top-up of `amount` started: (account, key, session)."""
    account, key = card.tollway.funded(credit)
    made = top_up(card, key, amount)
    assert made.status_code == 201, made.text
    return account, key, card.session(made.json()["session_id"])


def stripe_entries(card: Card, account: str) -> list[tuple[str, int, str]]:
    rows = query(
        card.tollway.database_url,
        "SELECT kind, amount_nano, reference FROM ledger WHERE account_id = ? AND reference LIKE 'stripe:%' "
        "ORDER BY id",
        account,
    )
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def assert_exact(card: Card, account: str, balance: int, entries: list[tuple[str, int, str]]) -> None:
    """The balance is `balance`, nothing reserved, equal to its ledger's sums; the Stripe entries are `entries`."""
    assert card.tollway.ledger_sums(account) == (balance, 0, balance, 0)
    assert sorted(stripe_entries(card, account)) == sorted(entries)


def outcomes(card: Card, account: str) -> list[tuple[str, bool]]:
    rows = query(
        card.tollway.database_url,
        "SELECT outcome, flagged FROM stripe_events WHERE account_id = ? ORDER BY received_at",
        account,
    )
    return [(str(r[0]), bool(r[1])) for r in rows]


def audit_actions(card: Card, account: str) -> list[str]:
    rows = query(
        card.tollway.database_url,
        "SELECT action FROM admin_audit WHERE actor = 'stripe' AND account_id = ? ORDER BY id",
        account,
    )
    return [str(r[0]) for r in rows]


# Off until configured -------------------------------------------------------------------------------


def test_off_by_default(tollway: Tollway) -> None:
    _, key = tollway.funded("0")
    made = httpx2.post(
        f"{tollway.url}/v1/billing/top-up",
        json={"amount_usd": "10"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert made.status_code == 404 and "TOLLWAY_STRIPE_SECRET_KEY" in made.json()["error"]["message"]
    hook = httpx2.post(
        f"{tollway.url}/v1/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1"}
    )
    assert hook.status_code == 404


# Starting a top-up ----------------------------------------------------------------------------------


def test_top_up_returns_a_checkout_url_and_records_the_session(card: Card) -> None:
    account, key = card.tollway.funded("0")
    made = top_up(card, key, "12.34")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["url"].startswith("https://checkout.stripe.test/") and body["amount_usd"] == "12.340000000"
    session = card.session(body["session_id"])
    assert session["amount_total"] == 1234 and session["currency"] == "usd"
    assert session["metadata"] == {
        "tollway_topup": body["id"],
        "tollway_account": account,
        "amount_cents": "1234",
    }
    assert session["payment_intent_metadata"] == session["metadata"]
    [row] = query(
        card.tollway.database_url,
        "SELECT account_id, amount_nano, status FROM stripe_topups WHERE session_id = ?",
        body["session_id"],
    )
    assert row == (account, 1234 * CENT, "open")
    assert_exact(card, account, 0, [])  # starting a top-up moves no money


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [
        ("4.99", "between"),
        ("500.01", "between"),
        ("10.001", "whole cents"),
        ("-5", "amount_usd"),
        ("ten", "amount_usd"),
    ],
)
def test_top_up_refusals(card: Card, amount: Any, fragment: str) -> None:
    account, key = card.tollway.funded("0")
    before = httpx2.get(f"{card.stripe.base_url}/_fake/stats").json()["creates"]
    made = top_up(card, key, amount)
    assert made.status_code == 400 and fragment in made.text, made.text
    assert httpx2.get(f"{card.stripe.base_url}/_fake/stats").json()["creates"] == before
    assert (
        query(card.tollway.database_url, "SELECT count(*) FROM stripe_topups WHERE account_id = ?", account)[
            0
        ][0]
        == 0
    )


def test_top_up_needs_an_account_key(card: Card) -> None:
    anonymous = httpx2.post(f"{card.tollway.url}/v1/billing/top-up", json={"amount_usd": "10"})
    assert anonymous.status_code == 401
    operator = top_up(card, OPERATOR_KEY, "10")
    assert operator.status_code == 403


def test_stripe_failure_is_a_502_without_the_secret(card: Card) -> None:
    account, key = card.tollway.funded("0")
    httpx2.post(
        f"{card.stripe.base_url}/_fake/script", json={"behaviors": [{"type": "status", "status": 401}]}
    )
    made = top_up(card, key, "10")
    assert made.status_code == 502, made.text
    assert "sk_" not in made.text and SECRET_KEY not in made.text
    assert card.tollway.process.log_text().count(SECRET_KEY) == 0
    assert (
        query(card.tollway.database_url, "SELECT count(*) FROM stripe_topups WHERE account_id = ?", account)[
            0
        ][0]
        == 0
    )


# Completion: exactly once ---------------------------------------------------------------------------


def test_completion_credits_once_and_a_duplicate_changes_nothing(card: Card) -> None:
    account, _, session = started(card, "1", "10")
    payload = event("checkout.session.completed", completed(session))
    first = deliver(card, payload)
    assert first.status_code == 200 and first.json()["outcome"] == "credited", first.text
    again = deliver(card, payload)  # Stripe redelivers: a new signature, the same event
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert_exact(card, account, 11 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])
    assert card.tollway.account(account)["balance_usd"] == "11.000000000"


def test_ten_concurrent_copies_of_one_event_credit_once(card: Card) -> None:
    account, _, session = started(card, "0", "25")
    payload = event("checkout.session.completed", completed(session))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: deliver(card, payload), range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert sorted(a.json()["outcome"] for a in answers) == ["credited"] + ["duplicate"] * 9
    assert_exact(card, account, 25 * NANO, [("credit", 25 * NANO, f"stripe:{session['id']}")])


def test_two_completion_events_for_one_session_credit_once(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    one = deliver(card, event("checkout.session.completed", completed(session)))
    two = deliver(card, event("checkout.session.async_payment_succeeded", completed(session)))
    assert (one.json()["outcome"], two.json()["outcome"]) == ("credited", "already_credited")
    with ThreadPoolExecutor(10) as pool:  # and ten distinct events at once
        late = list(
            pool.map(
                lambda _: deliver(card, event("checkout.session.completed", completed(session))), range(10)
            )
        )
    assert {a.json()["outcome"] for a in late} == {"already_credited"}
    assert_exact(card, account, 10 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])


def test_unpaid_completion_waits_for_the_async_payment(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    unpaid = deliver(card, event("checkout.session.completed", completed(session, payment_status="unpaid")))
    assert unpaid.json()["outcome"] == "unpaid"
    assert_exact(card, account, 0, [])
    paid = deliver(card, event("checkout.session.async_payment_succeeded", completed(session)))
    assert paid.json()["outcome"] == "credited"
    assert_exact(card, account, 10 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])


# Refused deliveries ---------------------------------------------------------------------------------


def test_stale_replay_and_bad_signatures_are_400_and_credit_nothing(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    payload = event("checkout.session.completed", completed(session))
    old = deliver(card, payload, signed(payload, at=int(time.time()) - 301))  # tolerance: 300 s
    assert old.status_code == 400 and "too old" in old.json()["error"]["message"]
    wrong_secret = deliver(card, payload, signed(payload, secret="whsec_not_ours"))
    tampered = deliver(card, payload.replace('"paid"', '"paid" '), signed(payload))
    garbage = deliver(card, payload, "t=1,v1=00")
    missing = deliver(card, payload, "")
    for answer in (wrong_secret, tampered, garbage, missing):
        assert answer.status_code == 400, answer.text
        assert WEBHOOK_SECRET not in answer.text
    assert_exact(card, account, 0, [])
    assert outcomes(card, account) == []
    # A replay of an event already applied, re-signed long ago: refused before it is even looked up.
    assert deliver(card, payload).json()["outcome"] == "credited"
    assert deliver(card, payload, signed(payload, at=int(time.time()) - 3600)).status_code == 400
    assert_exact(card, account, 10 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])
    assert WEBHOOK_SECRET not in card.tollway.process.log_text()


def test_forged_amount_is_not_credited_and_is_flagged(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    forged = deliver(card, event("checkout.session.completed", completed(session, amount_total=100_000)))
    assert forged.status_code == 200 and forged.json()["outcome"] == "amount_mismatch"
    euros = deliver(card, event("checkout.session.completed", completed(session, currency="eur")))
    assert euros.json()["outcome"] == "amount_mismatch"
    assert_exact(card, account, 0, [])
    assert outcomes(card, account) == [("amount_mismatch", True)] * 2
    assert audit_actions(card, account) == ["stripe.amount_mismatch"] * 2
    # The genuine completion still credits what we recorded, once.
    assert (
        deliver(card, event("checkout.session.completed", completed(session))).json()["outcome"] == "credited"
    )
    assert_exact(card, account, 10 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])


def test_a_session_we_did_not_create_is_flagged_not_credited(card: Card) -> None:
    stranger = {
        "id": f"cs_test_{uuid.uuid4().hex}",
        "amount_total": 1000,
        "currency": "usd",
        "payment_status": "paid",
    }
    answer = deliver(card, event("checkout.session.completed", stranger))
    assert answer.status_code == 200 and answer.json()["outcome"] == "unknown_session"
    assert (
        query(
            card.tollway.database_url,
            "SELECT count(*) FROM ledger WHERE reference = ?",
            f"stripe:{stranger['id']}",
        )[0][0]
        == 0
    )


# Refunds and disputes -------------------------------------------------------------------------------


def test_refund_before_completion_leaves_the_ledger_exact(card: Card) -> None:
    account, _, session = started(card, "2", "10")
    refund_event = event("charge.refunded", charge(session, 1000))
    refund = deliver(card, refund_event)
    assert refund.json()["outcome"] == "refunded"
    refund_id = json.loads(refund_event)["id"]
    assert_exact(card, account, -8 * NANO, [("adjust", -10 * NANO, f"stripe:{refund_id}")])
    assert deliver(card, refund_event).json()["outcome"] == "duplicate"
    done = deliver(card, event("checkout.session.completed", completed(session)))
    assert done.json()["outcome"] == "credited"
    assert_exact(
        card,
        account,
        2 * NANO,
        [("adjust", -10 * NANO, f"stripe:{refund_id}"), ("credit", 10 * NANO, f"stripe:{session['id']}")],
    )
    assert audit_actions(card, account) == ["stripe.refunded"]


def test_partial_refunds_debit_what_each_adds(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    deliver(card, event("checkout.session.completed", completed(session)))
    first, second, stale = (event("charge.refunded", charge(session, c)) for c in (200, 500, 200))
    assert deliver(card, first).json()["outcome"] == "refunded"
    assert deliver(card, second).json()["outcome"] == "refunded"
    assert deliver(card, stale).json()["outcome"] == "refund_counted"  # an older total, delivered late
    ids = [json.loads(p)["id"] for p in (first, second)]
    assert_exact(
        card,
        account,
        5 * NANO,
        [
            ("credit", 10 * NANO, f"stripe:{session['id']}"),
            ("adjust", -200 * CENT, f"stripe:{ids[0]}"),
            ("adjust", -300 * CENT, f"stripe:{ids[1]}"),
        ],
    )


def test_dispute_naming_no_known_top_up_is_retried_by_stripe(card: Card) -> None:
    account, _, session = started(card, "0", "10")
    early = event("charge.dispute.created", dispute(session, 1000))  # no metadata, PaymentIntent unknown yet
    refused = deliver(card, early)
    assert refused.status_code == 409, refused.text
    assert_exact(card, account, 0, [])
    assert (
        deliver(card, event("checkout.session.completed", completed(session))).json()["outcome"] == "credited"
    )
    retried = deliver(card, early)  # Stripe redelivers: now the PaymentIntent names the top-up
    assert retried.json()["outcome"] == "disputed"
    dispute_id = json.loads(early)["data"]["object"]["id"]
    assert_exact(
        card,
        account,
        0,
        [("credit", 10 * NANO, f"stripe:{session['id']}"), ("adjust", -10 * NANO, f"stripe:{dispute_id}")],
    )
    assert audit_actions(card, account) == ["stripe.disputed"]


# A dispute's lifecycle (core/funding/stripe_disputes.py): debited once, credited back once if won ------


def paid(card: Card, amount: str = "10") -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A paid $`amount` top-up, and a dispute of all of it not yet told: (account, session, dispute)."""
    account, _, session = started(card, "0", amount)
    assert (
        deliver(card, event("checkout.session.completed", completed(session))).json()["outcome"] == "credited"
    )
    return account, session, dispute(session, session["amount_total"])


def told(card: Card, kind: str, dp: dict[str, Any], status: str, event_id: str | None = None) -> str:
    """Deliver `charge.dispute.<kind>` of the dispute in `status`; its outcome."""
    answer = deliver(card, event(f"charge.dispute.{kind}", {**dp, "status": status}, event_id))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["outcome"])


def dispute_row(card: Card, dp: dict[str, Any]) -> tuple[str, bool, bool]:
    [(status, debited, credited)] = query(
        card.tollway.database_url,
        "SELECT status, debited, credited FROM stripe_disputes WHERE id = ?",
        dp["id"],
    )
    return str(status), bool(debited), bool(credited)


def test_a_dispute_created_then_won_nets_zero_and_is_credited_back_once(card: Card) -> None:
    account, session, dp = paid(card)
    topped = ("credit", 10 * NANO, f"stripe:{session['id']}")
    assert told(card, "created", dp, "needs_response") == "disputed"
    assert told(card, "funds_withdrawn", dp, "needs_response") == "dispute_counted"  # the same money
    assert_exact(card, account, 0, [topped, ("adjust", -10 * NANO, f"stripe:{dp['id']}")])
    won = f"evt_{uuid.uuid4().hex}"
    assert told(card, "closed", dp, "won", won) == "dispute_reversed"
    assert told(card, "closed", dp, "won", won) == "duplicate"  # Stripe delivers it again
    assert told(card, "funds_reinstated", dp, "won") == "dispute_counted"  # the same money back
    assert told(card, "closed", dp, "won") == "dispute_counted"  # another event saying so
    assert_exact(
        card,
        account,
        10 * NANO,
        [topped, ("adjust", -10 * NANO, f"stripe:{dp['id']}"), ("credit", 10 * NANO, f"stripe:{dp['id']}")],
    )
    assert dispute_row(card, dp) == ("won", True, True)
    assert audit_actions(card, account) == ["stripe.disputed", "stripe.dispute_reversed"]


def test_ten_concurrent_won_deliveries_credit_back_once(card: Card) -> None:
    account, session, dp = paid(card, "20")
    assert told(card, "created", dp, "needs_response") == "disputed"
    won = event("charge.dispute.closed", {**dp, "status": "won"})
    others = [event("charge.dispute.funds_reinstated", {**dp, "status": "won"}) for _ in range(5)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda p: deliver(card, p), [won] * 5 + others))
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    got = sorted(a.json()["outcome"] for a in answers)
    assert got.count("dispute_reversed") == 1 and set(got) <= {
        "dispute_reversed",
        "duplicate",
        "dispute_counted",
    }
    assert got.count("duplicate") >= 4  # the 4 other copies of one event: its id applies once
    ref = f"stripe:{dp['id']}"
    assert_exact(
        card,
        account,
        20 * NANO,
        [
            ("credit", 20 * NANO, f"stripe:{session['id']}"),
            ("adjust", -20 * NANO, ref),
            ("credit", 20 * NANO, ref),
        ],
    )


def test_a_dispute_closed_before_it_was_created_moves_nothing(card: Card) -> None:
    account, session, dp = paid(card)
    topped = ("credit", 10 * NANO, f"stripe:{session['id']}")
    assert told(card, "closed", dp, "won") == "dispute_returned"  # out of order: the money never left
    assert told(card, "created", dp, "needs_response") == "dispute_counted"
    assert told(card, "funds_withdrawn", dp, "needs_response") == "dispute_counted"
    assert told(card, "funds_reinstated", dp, "won") == "dispute_counted"
    assert_exact(card, account, 10 * NANO, [topped])
    assert dispute_row(card, dp) == ("won", False, True)
    # Lost before created: debited by the closing, once.
    other, _, lost = paid(card)
    assert told(card, "closed", lost, "lost") == "disputed"
    assert told(card, "created", lost, "needs_response") == "dispute_counted"
    assert dispute_row(card, lost) == ("lost", True, False)
    assert card.tollway.ledger_sums(other) == (0, 0, 0, 0)


def test_a_lost_dispute_stays_debited(card: Card) -> None:
    account, session, dp = paid(card)
    assert told(card, "created", dp, "needs_response") == "disputed"
    assert told(card, "updated", dp, "under_review") == "dispute_counted"
    assert told(card, "closed", dp, "lost") == "dispute_lost"
    assert told(card, "closed", dp, "lost") == "dispute_counted"
    assert_exact(
        card,
        account,
        0,
        [("credit", 10 * NANO, f"stripe:{session['id']}"), ("adjust", -10 * NANO, f"stripe:{dp['id']}")],
    )
    assert dispute_row(card, dp) == ("lost", True, False)
    assert audit_actions(card, account) == ["stripe.disputed", "stripe.dispute_lost"]


def test_an_inquiry_debits_nothing_until_it_becomes_a_dispute(card: Card) -> None:
    account, session, dp = paid(card)
    topped = ("credit", 10 * NANO, f"stripe:{session['id']}")
    assert told(card, "created", dp, "warning_needs_response") == "dispute_inquiry"
    assert_exact(card, account, 10 * NANO, [topped])
    assert told(card, "updated", dp, "needs_response") == "disputed"  # escalated: Stripe takes the money
    assert told(card, "funds_withdrawn", dp, "needs_response") == "dispute_counted"
    assert_exact(card, account, 0, [topped, ("adjust", -10 * NANO, f"stripe:{dp['id']}")])
    other, _, quiet = paid(card)
    assert told(card, "created", quiet, "warning_needs_response") == "dispute_inquiry"
    assert told(card, "closed", quiet, "warning_closed") == "dispute_returned"
    assert card.tollway.ledger_sums(other) == (10 * NANO, 0, 10 * NANO, 0)


def test_a_malformed_dispute_moves_nothing_and_is_flagged(card: Card) -> None:
    account, session, dp = paid(card)
    assert told(card, "created", {**dp, "amount": 0}, "needs_response") == "dispute_no_amount"
    assert told(card, "created", {**dp, "amount": "1000"}, "needs_response") == "dispute_no_amount"
    assert told(card, "created", {**dp, "id": None}, "needs_response") == "dispute_malformed"
    assert_exact(card, account, 10 * NANO, [("credit", 10 * NANO, f"stripe:{session['id']}")])
    assert [o for o in outcomes(card, account) if o[0] != "credited"] == [
        ("dispute_no_amount", True),
        ("dispute_no_amount", True),
        ("dispute_malformed", True),
    ]


def test_negative_balance_after_a_dispute_gets_402_until_topped_up(card: Card) -> None:
    account, key, session = started(card, "1", "10")
    deliver(card, event("checkout.session.completed", completed(session)))
    card.tollway.fake("POST", "reset")
    client = card.tollway.client(key)
    ok = client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    spent = 11 * NANO - card.tollway.ledger_sums(account)[0]
    assert ok.choices and spent > 0
    refund = event("charge.refunded", charge(session, 1000))
    chargeback = event("charge.dispute.created", dispute(session, 1000))
    assert deliver(card, refund).json()["outcome"] == "refunded"
    assert deliver(card, chargeback).json()["outcome"] == "disputed"
    balance = 11 * NANO - spent - 20 * NANO
    assert balance < 0
    assert card.tollway.ledger_sums(account) == (balance, 0, balance, 0)
    calls = card.tollway.fake_calls()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert refused.value.status_code == 402
    assert card.tollway.fake_calls() == calls  # refused before any upstream call
    assert card.tollway.ledger_sums(account) == (balance, 0, balance, 0)
    # The operator's adjustments still never make a balance negative ...
    debit = httpx2.post(
        f"{card.tollway.url}/v1/admin/accounts/{account}/adjustments",
        json={"type": "debit", "amount_usd": "1", "reason": "test"},
        headers={"authorization": f"Bearer {OPERATOR_KEY}", "idempotency-key": uuid.uuid4().hex},
    )
    assert 400 <= debit.status_code < 500, debit.text
    assert card.tollway.ledger_sums(account) == (balance, 0, balance, 0)
    # ... and a credit lands on a negative balance; once it is positive again the key works.
    credit = card.tollway.admin(
        "POST", f"/accounts/{account}/credits", {"amount_usd": "20", "reference": uuid.uuid4().hex}
    )
    assert credit.status_code in (200, 201), credit.text
    again = client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert again.choices
    final = card.tollway.ledger_sums(account)
    assert final[0] == final[2] and final[1] == final[3] == 0 and 0 < final[0] < balance + 20 * NANO


def test_console_top_up_links_to_checkout(card: Card) -> None:
    account = card.tollway.new_account("0")
    admin_key = card.tollway.new_key(account, scope="admin")
    with httpx2.Client(base_url=card.tollway.url, timeout=30) as browser:
        signed_in = browser.post("/console/login", data={"key": admin_key})
        assert signed_in.status_code in (200, 303), signed_in.text
        funding = browser.get("/console/funding")
        assert funding.status_code == 200 and "Top up by card" in funding.text
        csrf = funding.text.split('name="csrf" value="')[1].split('"')[0]
        refused = browser.post("/console/funding/top-up", data={"csrf": csrf, "amount_usd": "1"})
        assert refused.status_code == 400 and "between" in refused.text
        made = browser.post("/console/funding/top-up", data={"csrf": csrf, "amount_usd": "15.50"})
        assert made.status_code == 201, made.text
        link = made.text.split('href="https://checkout.stripe.test/c/pay/')[1].split('"')[0]
        assert card.session(link)["amount_total"] == 1550
        forged = browser.post("/console/funding/top-up", data={"csrf": "x", "amount_usd": "15.50"})
        assert forged.status_code == 403
    rows = query(
        card.tollway.database_url, "SELECT count(*) FROM stripe_topups WHERE account_id = ?", account
    )
    assert rows[0][0] == 1
    assert_exact(card, account, 0, [])


def billing_rows(html: str) -> list[list[str]]:
    """The cells of the Billing page's "Money in and out" table."""
    section = html.split("<caption>Money in and out</caption>")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1])
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]


def test_console_billing_lists_the_latest_money_movements_with_their_source(card: Card) -> None:
    account = card.tollway.new_account("3")  # the operator's credit
    admin_key = card.tollway.new_key(account, scope="admin")
    made = top_up(card, admin_key, "10")
    session = card.session(made.json()["session_id"])
    assert (
        deliver(card, event("checkout.session.completed", completed(session))).json()["outcome"] == "credited"
    )
    dp = dispute(session, 1000)
    assert told(card, "created", dp, "needs_response") == "disputed"
    [code] = card.tollway.admin("POST", "/redemption_codes", {"amount_usd": "2.50", "count": 1}).json()[
        "codes"
    ]
    redeemed = httpx2.post(
        f"{card.tollway.url}/v1/redemption_codes/redeem",
        json={"code": code["code"]},
        headers={"authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert redeemed.status_code == 200, redeemed.text
    card.tollway.new_account("7")  # another account's money is not shown
    with httpx2.Client(base_url=card.tollway.url, timeout=30) as browser:
        assert browser.post("/console/login", data={"key": admin_key}).status_code in (200, 303)
        page = browser.get("/console/billing")
        assert page.status_code == 200, page.text
        rows = billing_rows(page.text)
        assert [row[1:4] for row in rows] == [  # newest first
            ["credit", "+2.500000000", "redemption code"],
            ["debit", "-10.000000000", "card (Stripe)"],
            ["credit", "+10.000000000", "card (Stripe)"],
            ["credit", "+3.000000000", "operator"],
        ]
        assert rows[1][4] == f"stripe:{dp['id']}" and rows[2][4] == f"stripe:{session['id']}"
        assert rows[0][4].startswith("code:")
        for _ in range(50):  # the latest 50 only
            card.tollway.admin(
                "POST", f"/accounts/{account}/credits", {"amount_usd": "0.01", "reference": uuid.uuid4().hex}
            )
        rows = billing_rows(browser.get("/console/billing").text)
        assert len(rows) == 50 and {row[3] for row in rows} == {"operator"}


def test_a_dispute_below_zero_gets_402_and_winning_it_lets_the_keys_pay_again(card: Card) -> None:
    account, key, session = started(card, "0", "10")
    deliver(card, event("checkout.session.completed", completed(session)))
    client = card.tollway.client(key)
    card.tollway.fake("POST", "reset")
    assert client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    ).choices
    spent = 10 * NANO - card.tollway.ledger_sums(account)[0]
    dp = dispute(session, 1000)
    assert told(card, "created", dp, "needs_response") == "disputed"
    assert card.tollway.ledger_sums(account) == (-spent, 0, -spent, 0)
    calls = card.tollway.fake_calls()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert refused.value.status_code == 402 and card.tollway.fake_calls() == calls
    assert told(card, "closed", dp, "won") == "dispute_reversed"
    assert card.tollway.ledger_sums(account) == (10 * NANO - spent, 0, 10 * NANO - spent, 0)
    assert client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    ).choices
