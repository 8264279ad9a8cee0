"""The console's business pages in a real browser (issue 24): the operator's accounts (search, pages, edit,
suspend/resume, refund with a reason, statement), usage and revenue, upstreams, catalog, audit log; a
reseller's key edit and rotation and billing statement. Playwright driving Debian's chromium against a
real `tollway serve` on SQLite and PostgreSQL, as test_console_browser.py. Screenshots: test-output/console/.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway
from tests.contract.test_console_browser import CHROMIUM, admin_account, expect, shot, sign_in

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian chromium not installed: `make install` adds it"
    ),
]


@pytest.fixture(scope="module")
def browser(tollway_pg: Tollway) -> Iterator[object]:
    # tollway_pg first: its set-up calls asyncio.run, which cannot run inside Playwright's sync loop.
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture(params=["tollway", "tollway_pg"], ids=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> Tollway:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def chat(client: openai.OpenAI) -> str:
    answer = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


def named_account(server: Tollway, name: str, credit: str = "2.00") -> str:
    response = server.admin("POST", "/accounts", {"name": name, "credit_usd": credit})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def audit_of(server: Tollway, account_id: str) -> list[dict[str, Any]]:
    response = server.admin("GET", f"/audit?account_id={account_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_operator_searches_pages_suspends_and_resumes(browser: Any, server: Tollway) -> None:
    tag = f"shop{uuid.uuid4().hex[:6]}"
    ids = [named_account(server, f"{tag} customer {i:02}") for i in range(26)]
    target = ids[3]
    key = server.new_key(target, label="customer app")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)
    assert chat(client)

    page = sign_in(browser, server, OPERATOR_KEY)
    assert "Replicas seen" in page.content()
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_label("Search accounts").fill(tag.upper())  # any case
    page.get_by_role("button", name="Search").click()
    # all_inner_texts() does not wait: read each page only once the browser is on it
    page.wait_for_url(re.compile(r"[?&]q="))
    first = page.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert len(first) == 25
    shot(page, "operator-accounts-search")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(re.compile(r"[?&]after="))
    second = page.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(first + second) == [f"{tag} customer {i:02}" for i in range(26)]  # cursor pages
    assert page.get_by_role("link", name="Next page").count() == 0
    page.get_by_label("Search accounts").fill(target)  # an id, exactly
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 1
    page.get_by_role("link", name=target).click()
    assert page.locator("#state").inner_text() == "active"
    page.get_by_label("Age verified").check()
    page.get_by_label("Name").fill(f"{tag} renamed")
    page.get_by_role("button", name="Save account").click()
    expect(page.get_by_text("Saved: age_verified, name.")).to_be_visible()
    account = server.account(target)
    assert account["age_verified"] is True and account["name"] == f"{tag} renamed"

    page.get_by_role("button", name="Suspend account").click()
    assert page.locator("#state").inner_text() == "suspended"
    shot(page, "operator-account")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(client)
    assert refused.value.response.json()["error"]["code"] == "ACCOUNT_SUSPENDED"
    page.get_by_role("button", name="Resume account").click()
    assert page.locator("#state").inner_text() == "active"
    assert chat(client)

    actions = [x["action"] for x in audit_of(server, target)]
    assert actions[:3] == ["account.resume", "account.suspend", "account.edit"]
    entry = audit_of(server, target)[2]
    assert entry["actor"] == "operator" and entry["details"]["age_verified"] is True and entry["client_ip"]

    # Unticking every tier is a clear 400 and changes nothing.
    token = page.locator("input[name=csrf]").first.input_value()
    form = {"csrf": token, "name": "x", "plan": account["plan"], "content_tiers": ""}
    response = page.context.request.post(f"/console/operator/accounts/{target}/edit", form=form)
    assert response.status == 400 and "content_tiers" in response.text()
    assert server.account(target)["name"] == f"{tag} renamed"
    # Without the CSRF token: 403, nothing suspended.
    bare = page.context.request.post(f"/console/operator/accounts/{target}/suspend", form={})
    assert bare.status == 403 and server.account(target)["suspended"] is False

    for name, shot_name in (
        ("Usage and revenue", "operator-usage"),
        ("Upstreams", "operator-upstreams"),
        ("Catalog", "operator-catalog"),
    ):
        page.get_by_role("link", name=name).click()
        assert page.locator("h1").inner_text() == name
        shot(page, shot_name)
    page.goto(f"/console/operator/usage?account_id={target}")
    assert "fake-chat" in page.locator("#revenue-by-model").inner_html()
    expect(page.get_by_role("cell", name=target).first).to_be_visible()
    page.goto("/console/operator/upstreams")
    fake = page.locator("tr", has=page.get_by_role("cell", name="fake", exact=True))
    assert int(fake.locator("td").nth(1).inner_text()) >= 1  # every replica's calls in the window
    page.goto("/console/operator/catalog")
    expect(page.get_by_role("cell", name="fake-chat", exact=True)).to_be_visible()


def test_refund_with_reason_is_in_the_audit_log_and_the_statements(browser: Any, server: Tollway) -> None:
    account_id, admin_key = admin_account(server, "1.00")
    page = sign_in(browser, server, OPERATOR_KEY)
    page.goto(f"/console/operator/accounts/{account_id}")
    page.get_by_label("Adjustment").select_option("refund")
    page.get_by_label("Amount (USD)").fill("1.25")
    reason = "Outage refund <b>12-04</b>"
    page.get_by_label("Reason").fill(reason)
    # The same rendered form submitted twice (a double click, a resend) applies once.
    fields = {
        name: page.locator(f"form[action$='/adjust'] [name={name}]").input_value()
        for name in ("csrf", "idempotency_key", "type", "amount_usd", "reason")
    }
    page.get_by_role("button", name="Apply adjustment").click()
    expect(page.get_by_text("Applied: refund of $1.25")).to_be_visible()
    again = page.context.request.post(f"/console/operator/accounts/{account_id}/adjust", form=fields)
    assert again.status == 200 and "already submitted" in again.text()
    assert server.account(account_id)["balance_usd"] == "2.250000000"
    expect(page.get_by_role("cell", name=reason)).to_be_visible()  # recent adjustments, as text
    shot(page, "operator-adjusted")

    # Bad input: a clear 400 each, nothing moves.
    for bad, words in (
        ({"amount_usd": "1e3"}, "amount_usd"),
        ({"amount_usd": "0"}, "amount_usd"),
        ({"reason": "   "}, "reason"),
        ({"type": "gift"}, "type"),
        ({"type": "debit", "amount_usd": "99.00"}, "available balance"),
    ):
        fresh = {**fields, "idempotency_key": f"k-{uuid.uuid4().hex}", **bad}
        response = page.context.request.post(f"/console/operator/accounts/{account_id}/adjust", form=fresh)
        assert response.status == 400 and words in response.text(), response.text()
    assert server.account(account_id)["balance_usd"] == "2.250000000"

    page.get_by_role("link", name="Audit log", exact=True).click()
    page.get_by_label("Account id (optional)").fill(account_id)
    page.get_by_role("button", name="Filter").click()
    row = page.locator("tr", has_text="balance.adjust")
    assert row.count() == 1 and "1.250000000" in row.inner_text() and "refund" in row.inner_text()
    shot(page, "operator-audit")

    page.goto(f"/console/operator/accounts/{account_id}")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download statement (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    refund = [r for r in rows if r["entry"] == "refund"]
    assert len(refund) == 1 and refund[0]["reason"] == reason and refund[0]["amount_usd"] == "1.250000000"

    reseller = sign_in(browser, server, admin_key)
    reseller.get_by_role("link", name="Billing").click()
    shot(reseller, "billing")
    with reseller.expect_download() as mine:
        reseller.get_by_role("button", name="Download statement (CSV)").click()
    text = Path(mine.value.path()).read_text()
    assert text.startswith("timestamp,entry,") and reason in text
    assert reseller.goto(f"/console/operator/accounts/{account_id}/statement.csv").status == 404


def test_reseller_edits_and_rotates_a_key(browser: Any, server: Tollway) -> None:
    account_id, admin_key = admin_account(server, "2.00")
    label = f"svc-{uuid.uuid4().hex[:6]}"
    old = server.new_key(account_id, label=label)
    assert chat(openai.OpenAI(base_url=f"{server.url}/v1", api_key=old, max_retries=0, timeout=60))
    page = sign_in(browser, server, admin_key)
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("link", name=f"Edit or rotate key {label}").click()
    page.get_by_label("Label").fill(f"{label}-v2")
    page.get_by_label("Spending limit (USD)").fill("3.00")
    page.get_by_label("Limit period").select_option("month")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_text("Saved: consumption_limit, label, rate_limits.")).to_be_visible()
    shot(page, "key-edit")
    listed = server.admin("GET", f"/accounts/{account_id}/keys").json()["data"]
    key = next(k for k in listed if k["label"] == f"{label}-v2")
    assert key["consumption_limit"] == {"usd": "3.000000000", "period": "month"}
    assert key["rate_limits"]["rpm"] == 30

    page.get_by_label("Old secret keeps working for").select_option("3600")
    page.get_by_role("button", name="Rotate key").click()
    new = page.get_by_label("Secret", exact=True).input_value()
    assert new != old
    expect(page.get_by_text(re.compile("old secret works until"))).to_be_visible()
    shot(page, "key-rotated")
    for secret in (new, old):  # the old one during its grace period
        assert chat(openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0, timeout=60))
    page.goto(f"/console/keys/{key['id']}")
    assert new not in page.content()  # shown once
    actions = [(x["action"], x["target"]) for x in audit_of(server, account_id)]
    assert actions[:2] == [("key.rotate", key["id"]), ("key.edit", key["id"])]

    # Rotating with no grace ends the old secret at once.
    page.get_by_label("Old secret keeps working for").select_option("0")
    page.get_by_role("button", name="Rotate key").click()
    newest = page.get_by_label("Secret", exact=True).input_value()
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(base_url=f"{server.url}/v1", api_key=new, max_retries=0, timeout=60))
    assert chat(openai.OpenAI(base_url=f"{server.url}/v1", api_key=newest, max_retries=0, timeout=60))


def test_another_accounts_key_id_in_the_edit_forms_is_404(browser: Any, server: Tollway) -> None:
    _, mine = admin_account(server)
    other_account = server.new_account()
    theirs = server.admin("POST", f"/accounts/{other_account}/keys", {"label": "theirs"}).json()
    page = sign_in(browser, server, mine)
    page.goto("/console/keys")
    token = page.locator("input[name=csrf]").first.input_value()
    request = page.context.request
    assert request.get(f"/console/keys/{theirs['id']}").status == 404
    edit = request.post(f"/console/keys/{theirs['id']}/edit", form={"csrf": token, "label": "stolen"})
    assert edit.status == 404 and "No active key" in edit.text()
    rotate = request.post(f"/console/keys/{theirs['id']}/rotate", form={"csrf": token, "grace_seconds": "0"})
    assert rotate.status == 404
    listed = server.admin("GET", f"/accounts/{other_account}/keys").json()["data"]
    assert [k["label"] for k in listed] == ["theirs"]
    assert chat(openai.OpenAI(base_url=f"{server.url}/v1", api_key=theirs["key"], max_retries=0, timeout=60))
    assert audit_of(server, other_account)[0]["action"] == "key.mint"  # nothing else recorded
    # The operator's pages are not a reseller's.
    for path in (
        "/console/operator/audit",
        "/console/operator/usage",
        f"/console/operator/accounts/{other_account}",
    ):
        assert request.get(path).status == 404


def unlabelled_controls(page: Any) -> list[str]:
    """Visible inputs, selects and buttons without an accessible name (a <label for>, or text)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('main input:not([type=hidden]), main select, main button')]
        .filter(el => !(el.labels && el.labels.length) && !el.textContent.trim() && !el.getAttribute('aria-label'))
        .map(el => el.outerHTML)"""
    )
    return found


def test_new_pages_escape_names_label_controls_and_page_the_audit_log(browser: Any, server: Tollway) -> None:
    evil = "<script>alert(1)</script>"
    account_id = named_account(server, evil)
    for i in range(55):  # 55 audited credits: more than one page of the audit log
        body = {"amount_usd": "0.01", "reference": f"c{i}"}
        assert server.admin("POST", f"/accounts/{account_id}/credits", body).status_code == 200
    page = sign_in(browser, server, OPERATOR_KEY)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"/console/operator/accounts?q={account_id}")
    expect(page.get_by_role("cell", name=evil, exact=True)).to_be_visible()
    page.goto(f"/console/operator/accounts/{account_id}")
    assert page.locator("h1").inner_text() == f"Account {evil}" and dialogs == []
    for path in (
        "/console/operator/accounts",
        f"/console/operator/accounts/{account_id}",
        "/console/operator/usage",
        "/console/operator/upstreams",
        "/console/operator/audit",
        "/console/operator/credit",
    ):
        page.goto(path)
        assert unlabelled_controls(page) == [], path

    page.goto(f"/console/operator/audit?account_id={account_id}")
    assert page.locator("tbody tr").count() == 50
    page.get_by_role("link", name="Older entries").click()
    assert page.locator("tbody tr").count() == 6  # 5 credits and the account's creation
    expect(page.get_by_role("cell", name="account.create")).to_be_visible()
    assert page.get_by_role("link", name="Older entries").count() == 0
    page.get_by_role("link", name="Newest").click()
    assert page.locator("tbody tr").count() == 50
    assert page.goto("/console/operator/audit?before=x").status == 400

    reseller_account, admin_key = admin_account(server)
    server.new_key(reseller_account, label="kbd")
    reseller = sign_in(browser, server, admin_key)
    reseller.goto("/console/keys")
    reseller.get_by_role("link", name="Edit or rotate key kbd").click()
    key_page = reseller.url
    for path in (key_page, f"{server.url}/console/billing"):
        reseller.goto(path)
        assert unlabelled_controls(reseller) == [], path
    # Keyboard only: from the grace period's select, Tab reaches Rotate and Enter rotates.
    reseller.goto(key_page)
    reseller.get_by_label("Old secret keeps working for").focus()
    reseller.keyboard.press("Tab")
    assert reseller.evaluate("document.activeElement.textContent") == "Rotate key"
    reseller.keyboard.press("Enter")
    reseller.get_by_role("heading", name="Your new secret").wait_for()
    assert reseller.get_by_label("Secret", exact=True).input_value()
