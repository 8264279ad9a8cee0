"""The admin API's mirror on the command line (issue 24), against a real SQLite database and PostgreSQL:
accounts list/edit/suspend/resume, credit/debit/refund with a reason once per idempotency key, usage,
keys edit/rotate; --json for every command, JSON errors under --json; the database each command uses, and
no new empty database made by accident."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.servers import postgres_database
from tests.support.cli import Cli, in_process
from tests.support.databases import drop_postgres_database

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    database_url = f"sqlite:///{tmp_path}/cli.db" if request.param == "sqlite" else postgres_database()
    env = {**os.environ, "TOLLWAY_DATABASE_URL": database_url, "TOLLWAY_DATA_DIR": str(tmp_path)}
    env.pop("TOLLWAY_OPERATOR_KEY", None)
    if request.param == "postgresql":
        env["TOLLWAY_SECRET"] = uuid.uuid4().hex
    yield in_process(REPO, env)
    if request.param == "postgresql":
        drop_postgres_database(database_url)


def ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refused(done: subprocess.CompletedProcess[str], code: int, error: str) -> dict[str, Any]:
    assert done.returncode == code, (done.stdout, done.stderr)
    body = json.loads(done.stdout)["error"]
    assert body["code"] == error, body
    return dict(body)


def test_accounts_list_edit_suspend_resume(cli: Cli) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = sorted(ok(cli("accounts", "create", f"Shop {tag} {i}", "--json"))["id"] for i in range(3))
    page = ok(cli("accounts", "list", "--search", f"shop {tag}", "--limit", "2", "--json"))
    rest = ok(cli("accounts", "list", "--search", f"shop {tag}", "--after", page["next_cursor"], "--json"))
    assert [a["id"] for a in page["data"] + rest["data"]] == ids and rest["next_cursor"] is None
    edited = ok(
        cli("accounts", "edit", ids[0], "--plan", "pro", "--age-verified", "--keys-per-minute", "5", "--json")
    )
    assert (edited["plan"], edited["age_verified"], edited["limits"]) == ("pro", True, {"keys_per_minute": 5})
    refused(cli("accounts", "edit", ids[0], "--plan", "platinum", "--json"), 2, "VALIDATION")
    refused(cli("accounts", "edit", ids[0], "--tiers", "nsfw", "--json"), 2, "VALIDATION")
    assert ok(cli("accounts", "show", ids[0], "--json"))["plan"] == "pro"
    assert ok(cli("accounts", "suspend", ids[0], "--json"))["suspended"] is True
    assert ok(cli("accounts", "resume", ids[0], "--json"))["suspended"] is False
    missing = refused(cli("accounts", "suspend", "acct_nope", "--json"), 1, "NOT_FOUND")
    assert "acct_nope" in missing["message"]
    plain = cli("accounts", "suspend", "acct_nope")
    assert plain.returncode == 1 and plain.stderr.strip().endswith("No account 'acct_nope'.")


def test_credit_debit_refund_with_a_reason_once_per_key(cli: Cli) -> None:
    account = ok(cli("accounts", "create", "acme", "--credit", "1.00", "--json"))["id"]
    first = ok(
        cli("credit", account, "2.50", "--reason", "invoice 7", "--idempotency-key", "inv-7", "--json")
    )
    again = ok(
        cli("credit", account, "2.50", "--reason", "invoice 7", "--idempotency-key", "inv-7", "--json")
    )
    assert (first["applied"], again["applied"], again["balance_usd"]) == (True, False, "3.500000000")
    assert ok(cli("debit", account, "0.5", "--reason", "fix", "--json"))["balance_usd"] == "3.000000000"
    assert ok(cli("refund", account, "0.25", "--reason", "bad answer", "--json"))["type"] == "refund"
    for args, code, error in (
        (("credit", account, "1", "--reason", " "), 2, "VALIDATION"),
        (("credit", account, "1e3", "--reason", "x"), 2, "VALIDATION"),
        (("credit", account, "-1", "--reason", "x"), 2, "USAGE"),  # "-1" reads as an option
        (("credit", account, "--reason", "x"), 2, "USAGE"),
        (("debit", account, "100", "--reason", "x"), 2, "VALIDATION"),
        (("debit", account, "2.50", "--reason", "x", "--idempotency-key", "inv-7"), 1, "CONFLICT"),
        (("credit", "acct_nope", "1", "--reason", "x"), 1, "NOT_FOUND"),
    ):
        refused(cli(*args, "--json"), code, error)
    assert ok(cli("accounts", "show", account, "--json"))["balance_usd"] == "3.250000000"
    no_reason = cli("credit", account, "1")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert "--reason" in refused(cli("credit", account, "1", "--json"), 2, "USAGE")["message"]


def test_keys_edit_rotate_and_usage(cli: Cli) -> None:
    account = ok(cli("accounts", "create", "acme", "--credit", "1.00", "--json"))["id"]
    key = ok(cli("keys", "create", "--account", account, "--label", "one", "--json"))
    edited = ok(
        cli(
            "keys",
            "edit",
            key["id"],
            "--label",
            "two",
            "--limit-usd",
            "0.5",
            "--limit-period",
            "day",
            "--json",
        )
    )
    assert edited["label"] == "two" and edited["consumption_limit"] == {"usd": "0.500000000", "period": "day"}
    refused(cli("keys", "edit", key["id"], "--tier", "uncensored", "--json"), 1, "AGE_VERIFICATION_REQUIRED")
    refused(cli("keys", "edit", key["id"], "--limit-usd", "x", "--json"), 2, "VALIDATION")
    assert key["model_privacy"] == "ALL"
    private = ok(cli("keys", "edit", key["id"], "--model-privacy", "PRIVATE_ONLY", "--json"))
    assert private["model_privacy"] == "PRIVATE_ONLY"
    refused(cli("keys", "edit", key["id"], "--model-privacy", "SOME", "--json"), 2, "VALIDATION")
    strict = ok(cli("keys", "create", "--account", account, "--model-privacy", "PRIVATE_TEXT", "--json"))
    assert strict["model_privacy"] == "PRIVATE_TEXT"
    rotated = ok(cli("keys", "rotate", key["id"], "--grace-seconds", "60", "--json"))
    assert rotated["key"] != key["key"] and rotated["previous_key_valid_until"]
    listed = ok(cli("keys", "list", "--account", account, "--json"))
    assert listed[0]["spend_today_usd"] == "0.000000000" and rotated["key"] not in json.dumps(listed)
    assert ok(cli("usage", "--group-by", "account", "--json")) == []
    refused(cli("usage", "--group-by", "key", "--json"), 2, "VALIDATION")


def test_the_cli_says_which_database_and_never_makes_one_by_accident(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env["TOLLWAY_DATA_DIR"] = str(tmp_path / "data")
    stray = in_process(tmp_path, env)
    denied = stray("accounts", "list", "--json")
    body = refused(denied, 2, "CONFIGURATION")
    assert str(tmp_path / "tollway.db") in body["message"] and "--create-database" in body["message"]
    assert not (tmp_path / "tollway.db").exists()
    made = stray("--create-database", "accounts", "list", "--json")
    assert made.returncode == 0, made.stderr
    assert f"database: sqlite {tmp_path / 'tollway.db'}" in made.stderr
    assert (tmp_path / "tollway.db").exists()
    assert stray("accounts", "list", "--json").returncode == 0  # it exists now: no flag needed
    secret_url = "postgresql://user:hunter2@127.0.0.1:1/nowhere"
    shown = in_process(tmp_path, {**env, "TOLLWAY_DATABASE_URL": secret_url})("accounts", "list", "--json")
    assert shown.returncode != 0 and "hunter2" not in shown.stderr + shown.stdout
    assert "database: postgresql://user:***@127.0.0.1:1/nowhere" in shown.stderr
