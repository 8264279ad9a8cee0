"""Helpers for tests of refused requests: the exact 4xx in each surface's envelope, and proof that a
refusal charged nothing.

- `assert_error(response, status, code, param)`: the OpenAI envelope (Venice's shape under /api/v1),
  its request id the header's.
- `assert_refused(response, status, param=..., dialect=...)`: the same for the Anthropic and Gemini
  shapes too (their bodies carry no code; Gemini's none of the request id).
- `untouched(server, account_id)`: a context manager: the account's balance, reservation and ledger rows
  are exactly as before, the ledger still sums to the balances, and (when given) the upstream was not
  called. A refusal must happen before anything is held (`held_and_released=True` for the few only the
  model can make: then a hold may come and go, but nothing is charged).
- `fresh_key(server, account_id)`: a key whose rate limits stay out of the way. A test that sends many
  bad requests takes a new key every few of them: more than 20 failures from one key in 30 s are
  answered 429 (the failed-request limit), which would hide the answer under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import httpx2

from tests.contract.servers import Tollway
from tests.support.databases import query

Dialect = Literal["openai", "venice", "anthropic", "gemini", "task"]
# Seed 001's task and account routes: `{"success": false, "error": {"code", "message"}}`.
SEED_001_ROUTES = (
    "/images/generate",
    "/images/status",
    "/videos/generate",
    "/videos/status",
    "/account/credits",
    "/account/calculate-cost",
)
GENEROUS_LIMITS = {"rpm": 100_000, "rpd": 1_000_000, "tpm": 100_000_000}
FAILURES_PER_KEY = 15  # under the failed-request limit of 20 in 30 s


def assert_error(response: httpx2.Response, status: int, code: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    if dialect_of(response.request.url.path) == "venice":
        assert_venice_error(response, code, param)
        return
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) >= {"message", "type", "code", "param", "request_id"}
    assert error["request_id"] == response.headers["x-request-id"]
    if param is not None:
        assert error["param"] == param


def assert_venice_error(response: httpx2.Response, code: str, param: str | None = None) -> None:
    """Venice's StandardError / DetailedError: `error` is the message; `details` names the field."""
    body = response.json()
    assert isinstance(body["error"], str) and body["error"], body
    assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    if param is not None and response.status_code in (400, 422):  # DetailedError: input errors only
        node = body["details"]
        for part in param.replace("[", ".").replace("]", "").split("."):
            node = node[part] if part else node
        assert node["_errors"], body


def message_of(response: httpx2.Response) -> str:
    """The error message, in OpenAI's envelope or Venice's shape (`error` is the message itself)."""
    error = response.json()["error"]
    return str(error if isinstance(error, str) else error["message"])


def dialect_of(path: str) -> Dialect:
    """The envelope a path answers in (api/http.py error_response): Anthropic's `messages`, Gemini's
    /v1beta routes, seed 001's for its task and account routes, Venice's for the rest of /api/v1,
    OpenAI's for the rest of /v1."""
    route = path.removeprefix("/api").removeprefix("/v1")
    if path.startswith(("/v1beta/", "/api/v1beta/")):
        return "gemini"
    if route in SEED_001_ROUTES:
        return "task"
    if route == "/messages":
        return "anthropic"
    return "venice" if path.startswith("/api/v1/") else "openai"


def assert_refused(
    response: httpx2.Response,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    dialect: Dialect = "openai",
) -> None:
    """`status` in `dialect`'s envelope; `param` is named (the others' messages say "Invalid `param`")."""
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"].startswith("req_")
    if dialect == "venice":
        assert_error(response, status, code or response.json()["code"], param)
        return
    if dialect == "openai":
        assert_error(response, status, code or response.json()["error"]["code"], param)
        return
    body = response.json()
    if dialect == "anthropic":
        assert body["type"] == "error" and body["request_id"] == response.headers["x-request-id"]
        message = body["error"]["message"]
    elif dialect == "task":
        assert body["success"] is False and isinstance(body["error"]["code"], str)
        message = body["error"]["message"]
    else:
        assert body["error"]["code"] == status
        message = body["error"]["message"]
    if param is not None:
        assert f"`{param}`" in message, message


def ledger_rows(server: Tollway, account_id: str) -> int:
    [row] = query(server.database_url, "select count(*) from ledger where account_id = ?", account_id)
    return int(row[0])


@contextmanager
def untouched(
    server: Tollway,
    account_id: str,
    upstream_calls: Callable[[], int] | None = None,
    *,
    held_and_released: bool = False,
) -> Iterator[None]:
    """The block charged, held and called nothing for `account_id`. With `held_and_released`, a hold
    may have been taken and released (a refusal that only the model could make): nothing charged."""
    sums, rows = server.ledger_sums(account_id), ledger_rows(server, account_id)
    calls = upstream_calls() if upstream_calls is not None else None
    yield
    after = server.ledger_sums(account_id)
    assert after == sums, f"the account changed: {sums} → {after}"
    assert after[1] == 0 and (after[0], after[1]) == (after[2], after[3]), after
    if not held_and_released:
        assert ledger_rows(server, account_id) == rows, "a refused request wrote to the ledger"
    if upstream_calls is not None:
        assert upstream_calls() == calls, "the upstream was called"


def fresh_key(server: Tollway, account_id: str, **settings: Any) -> str:
    return server.new_key(account_id, rate_limits=GENEROUS_LIMITS, **settings)


class Keys:
    """A new key every FAILURES_PER_KEY uses: `keys()` is the key to send the next bad request with.

    An account mints at most 20 keys a minute: a long sweep sets `rotate_accounts` and each key is on
    an account of its own (with `credit` USD)."""

    def __init__(
        self,
        server: Tollway,
        account_id: str,
        *,
        rotate_accounts: bool = False,
        credit: str = "5.00",
        **settings: Any,
    ) -> None:
        self.server, self.account_id, self.settings = server, account_id, settings
        self.rotate_accounts, self.credit = rotate_accounts, credit
        self.used = FAILURES_PER_KEY
        self.key = ""

    def __call__(self) -> str:
        if self.used >= FAILURES_PER_KEY:
            if self.rotate_accounts:
                self.account_id = self.server.new_account(self.credit)
            self.key, self.used = fresh_key(self.server, self.account_id, **self.settings), 0
        self.used += 1
        return self.key
