"""The console in a real browser (issue 24): Playwright driving Debian's chromium, headless, against a
real `tollway serve` (the session's contract server, SQLite) and its fake upstream.

Never `playwright install`: the Makefile installs Debian's chromium and this launches it by path.
Screenshots of each main page go to test-output/console/ (gitignored).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from tests.contract.servers import OPERATOR_KEY, Tollway

playwright_api = pytest.importorskip("playwright.sync_api")
# Waiting assertions: `is_visible()` reads the page once, before a click's navigation may have finished.
expect = playwright_api.expect
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
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
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(params=["tollway", "tollway_pg"], ids=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> Tollway:
    """The contract server on SQLite, and on PostgreSQL (the session tables and queries on both)."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def shot(page: object, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)  # type: ignore[attr-defined]


def sign_in(browser: object, tollway: Tollway, key: str) -> object:
    context = browser.new_context(base_url=tollway.url)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto("/console")
    assert page.url.endswith("/console/login")  # no session: the sign-in form
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console$"))
    return page


def admin_account(tollway: Tollway, credit: str = "5.00") -> tuple[str, str]:
    account_id = tollway.new_account(credit)
    return account_id, tollway.new_key(account_id, scope="admin", label="console admin")


def test_reseller_runs_keys_usage_and_revocation(browser: object, server: Tollway) -> None:
    _, admin_key = admin_account(server)
    page = sign_in(browser, server, admin_key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "tollway_console")  # type: ignore[attr-defined]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != admin_key
    assert admin_key not in page.content()
    shot(page, "dashboard-empty")

    page.get_by_role("link", name="Keys").click()
    label = f"app-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Label").fill(label)
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("sk-") or len(secret) > 20
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    shot(page, "keys")

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0, timeout=60)
    answer = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content

    page.goto("/console")
    chart = page.locator("#by-key")
    assert label in chart.inner_html() and "fake-chat" in page.locator("#by-model").inner_html()
    shot(page, "dashboard")
    page.goto("/console/usage")
    expect(page.get_by_role("cell", name="fake-chat").first).to_be_visible()
    shot(page, "usage")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("created_at,request_id") and label in csv_text and "fake-chat" in csv_text

    for name in ("models", "jobs", "quickstart", "funding"):
        page.goto(f"/console/{name}")
        assert page.locator("h1").inner_text()
        shot(page, name)
    assert server.url + "/v1" in page.goto("/console/quickstart").text()  # type: ignore[union-attr]

    page.goto("/console/keys")
    page.get_by_role("button", name=f"Revoke key {label}").click()
    expect(page.get_by_text(f"Key {label} revoked.")).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])

    page.get_by_role("button", name="Sign out").click()
    page.goto("/console/keys")
    assert page.url.endswith("/console/login")


def test_operator_credit_shows_on_reseller_dashboard(browser: object, server: Tollway) -> None:
    account_id, admin_key = admin_account(server, "1.00")
    operator = sign_in(browser, server, OPERATOR_KEY)
    assert "Jobs queued" in operator.content()  # type: ignore[attr-defined]
    shot(operator, "operator-status")
    operator.get_by_role("link", name="Credit an account").click()  # type: ignore[attr-defined]
    operator.get_by_label("Account id").fill(account_id)  # type: ignore[attr-defined]
    operator.get_by_label("Amount (USD)").fill("2.50")  # type: ignore[attr-defined]
    operator.get_by_role("button", name="Credit").click()  # type: ignore[attr-defined]
    expect(operator.get_by_text("balance now $3.500000000")).to_be_visible()  # type: ignore[attr-defined]
    shot(operator, "operator-credit")
    operator.get_by_role("link", name="Accounts").click()  # type: ignore[attr-defined]
    operator.get_by_label("Account name").fill("Made in the console")  # type: ignore[attr-defined]
    operator.get_by_label("Opening credit (USD)").fill("0.75")  # type: ignore[attr-defined]
    operator.get_by_role("button", name="Create account").click()  # type: ignore[attr-defined]
    expect(operator.get_by_text("created: its id is")).to_be_visible()  # type: ignore[attr-defined]
    created = operator.locator("td", has_text="acct_").first.inner_text()  # type: ignore[attr-defined]
    assert server.account(created)["balance_usd"] == "0.750000000"
    operator.goto(f"/console/operator/accounts?id={account_id}")  # type: ignore[attr-defined]
    expect(operator.get_by_role("cell", name="3.500000000").first).to_be_visible()  # type: ignore[attr-defined]
    shot(operator, "operator-accounts")
    assert operator.goto("/console/operator/accounts?id=acct_nobody").status == 404  # type: ignore[attr-defined]
    reseller = sign_in(browser, server, admin_key)
    assert reseller.locator("#balance").inner_text() == "$3.500000000"  # type: ignore[attr-defined]
    assert server.account(account_id)["balance_usd"] == "3.500000000"


def test_script_label_renders_as_text(browser: object, server: Tollway) -> None:
    account_id, admin_key = admin_account(server)
    evil = "<script>alert(1)</script>"
    server.new_key(account_id, label=evil)
    page = sign_in(browser, server, admin_key)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    page.goto("/console/keys")
    expect(page.get_by_role("cell", name=evil, exact=True)).to_be_visible()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()
    assert dialogs == []


def test_other_accounts_key_and_missing_csrf_are_refused(browser: object, server: Tollway) -> None:
    _, mine = admin_account(server)
    other_account, _ = admin_account(server)
    other = server.admin("POST", f"/accounts/{other_account}/keys", {"label": "theirs"}).json()
    page = sign_in(browser, server, mine)
    page.goto("/console/keys")
    token = page.locator("input[name=csrf]").first.input_value()
    request = page.context.request  # type: ignore[attr-defined]
    # Tampered id in the URL: another account's key is "not found", and stays active.
    refused = request.post(f"/console/keys/{other['id']}/revoke", form={"csrf": token})
    assert refused.status == 404 and "No active key" in refused.text()
    assert any(
        k["id"] == other["id"] for k in server.admin("GET", f"/accounts/{other_account}/keys").json()["data"]
    )
    # A form without the CSRF token (or with a wrong one) is refused and nothing is created.
    before = len(server.admin("GET", f"/accounts/{other_account}/keys").json()["data"])
    for form in ({"label": "no-token"}, {"label": "bad-token", "csrf": "x" * 64}):
        response = request.post("/console/keys", form=form)
        assert response.status == 403 and "CSRF" in response.text()
    assert "no-token" not in page.goto("/console/keys").text()  # type: ignore[union-attr]
    assert len(server.admin("GET", f"/accounts/{other_account}/keys").json()["data"]) == before
    # The operator's pages are not a reseller's.
    assert request.get("/console/operator/status").status == 404
    # Inference keys cannot sign in.
    inference = server.new_key(server.new_account(), label="inf")
    response = httpx2.post(f"{server.url}/console/login", data={"key": inference})
    assert response.status_code == 403 and "admin-scope" in response.text


def test_docs_work_offline_with_authorize(browser: object, server: Tollway) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith(server.url) or r.url.startswith("data:") else outside.append(r.url)
        ),
    )
    page.goto(f"{server.url}/docs")
    page.get_by_role("button", name=re.compile("Authorize")).first.wait_for()
    assert outside == []
    shot(page, "docs", full_page=False)


def test_bad_form_input_is_a_clear_400_and_changes_nothing(browser: object, server: Tollway) -> None:
    account_id, admin_key = admin_account(server, "1.00")
    page = sign_in(browser, server, admin_key)
    page.goto("/console/keys")  # type: ignore[attr-defined]
    token = page.locator("input[name=csrf]").first.input_value()  # type: ignore[attr-defined]
    request = page.context.request  # type: ignore[attr-defined]
    before = server.admin("GET", f"/accounts/{account_id}/keys").json()["data"]
    for form, words in (
        ({"label": "x", "limit_usd": "-5"}, "consumption_limit"),
        ({"label": "x", "expires_at": "2000-01-01"}, "expires_at"),
        ({"label": "x" * 201}, "label"),
    ):
        response = request.post("/console/keys", form={**form, "csrf": token})
        assert response.status == 400 and words in response.text(), response.text()
    assert server.admin("GET", f"/accounts/{account_id}/keys").json()["data"] == before

    operator = sign_in(browser, server, OPERATOR_KEY)
    operator.goto("/console/operator/credit")  # type: ignore[attr-defined]
    op_token = operator.locator("input[name=csrf]").first.input_value()  # type: ignore[attr-defined]
    op_request = operator.context.request  # type: ignore[attr-defined]
    for form, status in (
        ({"account_id": account_id, "amount_usd": "1e3", "reference": "r1"}, 400),
        ({"account_id": account_id, "amount_usd": "0", "reference": "r2"}, 400),
        ({"account_id": "acct_nobody", "amount_usd": "1.00", "reference": "r3"}, 404),
    ):
        assert op_request.post("/console/operator/credit", form={**form, "csrf": op_token}).status == status
    assert server.account(account_id)["balance_usd"] == "1.000000000"
    # The same reference twice credits once.
    for _ in range(2):
        form = {"account_id": account_id, "amount_usd": "1.00", "reference": "same-ref", "csrf": op_token}
        assert op_request.post("/console/operator/credit", form=form).status == 200
    assert server.account(account_id)["balance_usd"] == "2.000000000"
