"""The `tollway` CLI against a fresh SQLite database: every command, with --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # starts a server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tollway_cli(tmp_path: Path) -> Any:
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "TOLLWAY_DATA_DIR": str(tmp_path),
    }
    env.pop("TOLLWAY_OPERATOR_KEY", None)

    def run(*args: str, ok: bool = True) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "tollway", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if "--json" in args else done.stdout
        assert done.returncode != 0
        return done.stderr

    return run


def test_cli_round_trip(tollway_cli: Any) -> None:
    first = tollway_cli("init", "--json")
    assert first["operator_key"].startswith("tw_")
    assert tollway_cli("init", "--json")["operator_key"] is None  # shown once, never again
    account = tollway_cli("accounts", "create", "acme", "--credit", "5.00", "--age-verified", "--json")
    assert (account["balance_usd"], account["age_verified"]) == ("5.000000000", True)
    credited = tollway_cli("accounts", "credit", account["id"], "2.50", "--reference", "inv-1", "--json")
    again = tollway_cli("accounts", "credit", account["id"], "2.50", "--reference", "inv-1", "--json")
    assert (credited["applied"], again["applied"], again["balance_usd"]) == (True, False, "7.500000000")
    key = tollway_cli(
        "keys",
        "create",
        "--account",
        account["id"],
        "--label",
        "cust-1",
        "--tier",
        "uncensored",
        "--limit-usd",
        "1.00",
        "--limit-period",
        "day",
        "--json",
    )
    assert key["key"].startswith("tw_") and key["content_tier"] == "uncensored"
    assert key["consumption_limit"] == {"usd": "1.000000000", "period": "day"}
    listed = tollway_cli("keys", "list", "--account", account["id"], "--json")
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["key"] not in json.dumps(listed)
    assert tollway_cli("keys", "revoke", key["id"], "--json")["revoked"] is True
    assert tollway_cli("keys", "list", "--account", account["id"], "--json") == []
    shown = tollway_cli("accounts", "show", account["id"], "--json")
    assert shown["balance_usd"] == "7.500000000"
    models = tollway_cli("models", "--json")
    assert {m["id"] for m in models} >= {"smollm2-135m", "minilm-l6-v2"}


def test_cli_errors_are_clear(tollway_cli: Any) -> None:
    assert "No account" in tollway_cli("accounts", "show", "acct_missing", ok=False)
    assert "error" in tollway_cli("keys", "create", "--account", "x", "--scope", "root", ok=False)
    assert "9 decimal" in tollway_cli("accounts", "create", "x", "--credit", "0.0000000001", ok=False)


def test_serve_refuses_an_invalid_catalog_before_listening(tmp_path: Path) -> None:
    """Checked once before listening or starting workers (runtime/server.py prepare): exit 2, a message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{id: broken, routes: [{provider: nowhere, model: x}]}]\n")
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "TOLLWAY_DATA_DIR": str(tmp_path),
        "TOLLWAY_REDIS_URL": "redis://127.0.0.1:6379/0",  # what --workers 2 needs; never reached here
    }
    for workers in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "tollway", "serve", "--config", str(bad), "--workers", workers],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        assert f"error: the catalog {bad} is invalid" in done.stderr and "Traceback" not in done.stderr
