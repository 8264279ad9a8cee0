"""An unexpected server error (issue 19 item 6) is a JSON 500 with the request id, on a connection the
client can go on using; a method a route does not serve is a 405 that says which ones it does (`Allow`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from tests.contract.refusals import assert_error, assert_refused, dialect_of, message_of
from tests.contract.servers import OPERATOR_KEY, Tollway

pytestmark = pytest.mark.slow


@contextmanager
def table_missing(server: Tollway, table: str) -> Iterator[None]:
    """The database loses `table` for a moment (a broken migration, an operator's mistake): a genuine
    server fault, made from outside Tollway's code."""
    path = server.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(f"alter table {table} rename to {table}_away")
    try:
        yield
    finally:
        with sqlite3.connect(path) as db:
            db.execute(f"alter table {table}_away rename to {table}")


def _local_address(response: httpx2.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_usable(tollway: Tollway) -> None:
    admin_key = tollway.new_key(tollway.new_account("1.00"), scope="admin")
    uvicorn_errors = tollway.process.log_text().count("Exception in ASGI application")
    headers = {"authorization": f"Bearer {admin_key}"}
    with httpx2.Client(base_url=tollway.url, headers=headers) as client:
        assert client.get("/v1/keys/events").status_code == 200
        first = _local_address(client.get("/health"))
        with table_missing(tollway, "key_events"):
            crashed = client.get("/v1/keys/events")
        assert_error(crashed, 500, "INTERNAL")
        assert crashed.json()["error"]["type"] == "server_error"
        assert "connection" not in crashed.headers  # a normal answer: no `Connection: close`
        again = client.get("/v1/keys/events")  # on the same connection: the server kept it open
        assert again.status_code == 200
        assert _local_address(crashed) == _local_address(again) == first
    logged = tollway.process.log_text()
    assert crashed.json()["error"]["request_id"] in logged  # the operator can find what happened
    assert logged.count("Exception in ASGI application") == uvicorn_errors  # handled, not left to uvicorn


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/api/v1/embeddings", "POST"),
        ("PUT", "/v1/api_keys", "GET, POST, PATCH, DELETE"),  # four routes share the path
        ("POST", "/v1/api_keys/key_x", "GET"),
        ("GET", "/v1beta/models/fake-chat:generateContent", "POST"),
        ("DELETE", "/v1/admin/accounts/acct_x", "GET, PATCH"),
        ("POST", "/health", "GET"),
    ],
)
def test_405_says_which_methods_the_route_serves(
    tollway: Tollway, method: str, path: str, allowed: str
) -> None:
    response = httpx2.request(
        method, f"{tollway.url}{path}", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert_refused(response, 405, code="METHOD_NOT_ALLOWED", dialect=dialect_of(path))
    assert response.headers["allow"] == allowed
    assert allowed in message_of(response)
