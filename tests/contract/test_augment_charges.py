"""Venice's augment routes as paid calls (issue 23: `augment/text-parser`, `augment/search`,
`augment/scrape`), on a real server: each is charged exactly its price (TOLLWAY_AUGMENT_*_USD) through
the one charge path, with its usage row and the `x-tollway-cost-usd` header; a balance that cannot pay
it is a 402 before anything is parsed, searched or fetched; work that fails charges nothing; a price of
0 keeps a route free (a usage row at cost 0, as for a free catalog model).

The outside world is faked at its wire protocol: the search backend is tests/fakes/search_upstream.py
(SearXNG's JSON), and "the public web" is tests/fakes/web_pages.py, the server's HTTP proxy, so a page at
a public address (vetted by the SSRF guard first) is fetched offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway, start_tollway
from tests.contract.test_venice_parity import call, documented
from tests.support.databases import query
from tests.support.documents import pdf_with
from tests.support.processes import ServerProcess, start_fake

pytestmark = pytest.mark.slow
PRICES = {"text-parser": 1_000_000, "search": 2_500_000, "scrape": 2_000_000}  # nano-USD a call
PUBLIC = "http://93.184.215.14"  # a public address literal: no DNS; the fake web answers it by proxy
CREDIT = 1_000_000_000  # every account here starts with 1.00 USD unless it says otherwise


@pytest.fixture(scope="module")
def search() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.search_upstream") as process:
        yield process


@pytest.fixture(scope="module")
def web() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.web_pages") as process:
        yield process


def augment_server(
    tmp: Any, fake_upstream: ServerProcess, search: ServerProcess, web: ServerProcess, prices: dict[str, str]
) -> Tollway:
    database_url = f"sqlite:///{tmp}/tollway.db"
    env = {
        "TOLLWAY_SEARCH_URL": f"{search.base_url}/search",
        "HTTP_PROXY": web.base_url,  # the fetcher's client honours it; the fakes on 127.0.0.1 do not
        "NO_PROXY": "127.0.0.1,localhost",
        "TOLLWAY_FAILED_REQUEST_LIMIT": "false",
        **prices,
    }
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    return Tollway(process, database_url, fake_upstream.base_url)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    search: ServerProcess,
    web: ServerProcess,
) -> Iterator[Tollway]:
    # text-parser keeps the default (Venice's least price, 0.001 USD); the others are set.
    prices = {"TOLLWAY_AUGMENT_SEARCH_USD": "0.0025", "TOLLWAY_AUGMENT_SCRAPE_USD": "0.002"}
    tollway = augment_server(tmp_path_factory.mktemp("augment"), fake_upstream, search, web, prices)
    yield tollway
    tollway.process.stop()


@pytest.fixture(scope="module")
def free(
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    search: ServerProcess,
    web: ServerProcess,
) -> Iterator[Tollway]:
    prices = {f"TOLLWAY_AUGMENT_{name}_USD": "0" for name in ("TEXT_PARSER", "SEARCH", "SCRAPE")}
    tollway = augment_server(tmp_path_factory.mktemp("augment-free"), fake_upstream, search, web, prices)
    yield tollway
    tollway.process.stop()


def parse(server: Tollway, key: str, name: str, data: bytes, **form: str) -> httpx2.Response:
    return call(server, "POST", "/api/v1/augment/text-parser", key, files={"file": (name, data)}, data=form)


def charged(server: Tollway, account_id: str, credit: int = CREDIT) -> int:
    balance, reserved, _, _ = server.ledger_sums(account_id)
    assert reserved == 0
    return credit - balance


def usage_row(server: Tollway, answer: httpx2.Response) -> tuple[Any, ...]:
    [row] = query(
        server.database_url,
        "select model, endpoint, provider, units, cost_nano, outcome, status_code from usage where request_id = ?",
        answer.headers["x-request-id"],
    )
    return tuple(row)


def searches(search: ServerProcess) -> int:
    return len(httpx2.get(f"{search.base_url}/_fake/stats").json()["queries"])


def fetches(web: ServerProcess) -> int:
    return len(httpx2.get(f"{web.base_url}/_fake/stats").json()["fetches"])


def a_call(server: Tollway, key: str, operation: str) -> httpx2.Response:
    """One good call of `operation`."""
    if operation == "text-parser":
        return parse(server, key, "report.pdf", pdf_with("Quarterly report"))
    if operation == "search":
        return call(server, "POST", "/api/v1/augment/search", key, {"query": "lighthouses", "limit": 2})
    return call(server, "POST", "/api/v1/augment/scrape", key, {"url": f"{PUBLIC}/page"})


PROVIDERS = {"text-parser": "tollway", "search": "search", "scrape": "web"}


@pytest.mark.parametrize("operation", ["text-parser", "search", "scrape"])
def test_each_route_is_charged_exactly_its_price(
    server: Tollway, search: ServerProcess, web: ServerProcess, operation: str
) -> None:
    account_id, key = server.funded("1.00")
    price = PRICES[operation]
    before = (searches(search), fetches(web))
    answer = a_call(server, key, operation)
    assert answer.status_code == 200, answer.text
    body = documented(f"POST /augment/{operation}", answer)
    assert answer.headers["x-tollway-cost-usd"] == f"0.{price:09d}"
    assert answer.headers["x-tollway-cost-nano"] == str(price)
    assert charged(server, account_id) == price
    assert usage_row(server, answer) == (
        f"augment-{operation}",
        f"augment/{operation}",
        PROVIDERS[operation],
        1,
        price,
        "completed",
        200,
    )
    if operation == "text-parser":
        assert body["text"] == "Quarterly report" and body["tokens"] > 0
        plain = parse(server, key, "notes.txt", b"plain words", response_format="text")
        assert plain.text == "plain words" and plain.headers["x-tollway-cost-nano"] == str(price)
        assert charged(server, account_id) == 2 * price
    elif operation == "search":
        assert [r["title"] for r in body["results"]] == [
            "Result 0 for lighthouses",
            "Result 1 for lighthouses",
        ]
        assert (searches(search), fetches(web)) == (before[0] + 1, before[1])
    else:
        assert body["content"].startswith("# Lighthouses\n\n") and "off the rocks" in body["content"]
        assert (searches(search), fetches(web)) == (before[0], before[1] + 1)


@pytest.mark.parametrize("operation", ["text-parser", "search", "scrape"])
def test_a_balance_short_of_the_price_is_a_402_before_the_work(
    server: Tollway, search: ServerProcess, web: ServerProcess, operation: str
) -> None:
    short = PRICES[operation] - 1  # one nano-USD short
    account_id, key = server.funded(f"0.{short:09d}")
    before = (searches(search), fetches(web))
    with untouched(server, account_id):  # nothing held, charged or written to the ledger
        answer = a_call(server, key, operation)
    assert_error(answer, 402, "INSUFFICIENT_BALANCE")
    documented(f"POST /augment/{operation}", answer)
    assert (searches(search), fetches(web)) == before  # no search was sent, no page fetched
    assert "x-tollway-cost-usd" not in answer.headers
    exact, exact_key = server.funded(f"0.{PRICES[operation]:09d}")  # exactly the price is enough
    assert a_call(server, exact_key, operation).status_code == 200
    assert charged(server, exact, PRICES[operation]) == PRICES[operation]


@pytest.mark.parametrize(
    ("url", "status", "code", "says"),
    [
        ("http://127.0.0.1:9/", 400, "VALIDATION", "public"),  # the SSRF guard
        ("http://10.0.0.1/admin", 400, "VALIDATION", "public"),
        (f"{PUBLIC}/big", 413, "INVALID_FILE_SIZE", ""),  # over the 2 MiB a scrape reads
        (f"{PUBLIC}/missing", 400, "VALIDATION", "404"),
    ],
)
def test_a_scrape_that_fails_charges_nothing(
    server: Tollway, web: ServerProcess, url: str, status: int, code: str, says: str
) -> None:
    account_id, key = server.funded("1.00")
    sent = fetches(web)
    with untouched(server, account_id, held_and_released=True):
        answer = call(server, "POST", "/api/v1/augment/scrape", key, {"url": url})
    assert_error(answer, status, code)
    assert says in answer.json()["error"] and "x-tollway-cost-usd" not in answer.headers
    row = usage_row(server, answer)
    assert row == ("augment-scrape", "augment/scrape", "web", 0, 0, "refused", status)
    # The guard refuses a private address before any connection; a public one is fetched once.
    assert fetches(web) == sent + (0 if "public" in says else 1)


def test_a_search_backend_that_is_down_is_a_502_and_charges_nothing(
    server: Tollway, search: ServerProcess
) -> None:
    account_id, key = server.funded("1.00")
    sent = searches(search)
    with untouched(server, account_id, held_and_released=True):
        answer = call(server, "POST", "/api/v1/augment/search", key, {"query": "fail please"})
    assert_error(answer, 502, "UPSTREAM_ERROR")
    assert "Nothing was charged" in answer.json()["error"]
    assert searches(search) == sent + 1
    assert usage_row(server, answer) == (
        "augment-search",
        "augment/search",
        "search",
        0,
        0,
        "upstream_error",
        502,
    )


@pytest.mark.parametrize(("name", "data"), [("x.pdf", b"%PDF-1.4 broken"), ("x.bin", b"\x00\x01\x02binary")])
def test_a_document_that_cannot_be_read_charges_nothing(server: Tollway, name: str, data: bytes) -> None:
    account_id, key = server.funded("1.00")
    with untouched(server, account_id, held_and_released=True):
        answer = parse(server, key, name, data)
    assert_error(answer, 400, "VALIDATION", "file")
    row = usage_row(server, answer)
    assert row == ("augment-text-parser", "augment/text-parser", "tollway", 0, 0, "refused", 400)


def test_a_bad_request_is_refused_before_any_hold(server: Tollway, search: ServerProcess) -> None:
    """Checked before the money: no hold, no ledger row, no usage row, no search."""
    account_id, key = server.funded("1.00")
    sent = searches(search)
    with untouched(server, account_id):
        for path, body, param in (
            ("/api/v1/augment/search", {"query": ""}, "query"),
            ("/api/v1/augment/search", {"query": "x", "limit": 21}, "limit"),
            ("/api/v1/augment/scrape", {"url": "ftp://example.com/"}, "url"),
        ):
            answer = call(server, "POST", path, key, body)
            assert_error(answer, 400, "VALIDATION", param)
            assert (
                query(
                    server.database_url,
                    "select 1 from usage where request_id = ?",
                    answer.headers["x-request-id"],
                )
                == []
            )
        bad_format = parse(server, key, "x.txt", b"hi", response_format="xml")
        assert_error(bad_format, 400, "VALIDATION", "response_format")
    assert searches(search) == sent


@pytest.mark.parametrize("operation", ["text-parser", "search", "scrape"])
def test_a_price_of_0_keeps_a_route_free_with_a_usage_row(free: Tollway, operation: str) -> None:
    """Like a free catalog model: admitted (a hold of 0), answered, and recorded at cost 0."""
    account_id, key = free.funded("1.00")
    answer = a_call(free, key, operation)
    assert answer.status_code == 200, answer.text
    documented(f"POST /augment/{operation}", answer)
    assert answer.headers["x-tollway-cost-usd"] == "0.000000000"
    assert charged(free, account_id) == 0
    assert usage_row(free, answer) == (
        f"augment-{operation}",
        f"augment/{operation}",
        PROVIDERS[operation],
        1,
        0,
        "completed",
        200,
    )


def test_text_parser_is_charged_and_refused_the_same_on_postgresql(tollway_pg: Tollway) -> None:
    """The same charge path on PostgreSQL (the session server: default prices, no search backend)."""
    account_id, key = tollway_pg.funded("1.00")
    answer = parse(tollway_pg, key, "notes.txt", b"plain words")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-tollway-cost-usd"] == "0.001000000"
    assert charged(tollway_pg, account_id) == 1_000_000
    assert usage_row(tollway_pg, answer)[4:] == (1_000_000, "completed", 200)
    with untouched(tollway_pg, account_id, held_and_released=True):
        assert_error(parse(tollway_pg, key, "x.pdf", b"%PDF-1.4 broken"), 400, "VALIDATION", "file")
    poor, poor_key = tollway_pg.funded("0.000999999")
    with untouched(tollway_pg, poor):
        assert_error(parse(tollway_pg, poor_key, "notes.txt", b"plain words"), 402, "INSUFFICIENT_BALANCE")


def test_a_private_only_key_may_still_call_them(server: Tollway) -> None:
    """modelPrivacy restricts models; the augment routes were never subject to it, and still are not."""
    account_id = server.new_account("1.00")
    admin = server.new_key(account_id, scope="admin")
    body = {"apiKeyType": "INFERENCE", "description": "strict", "modelPrivacy": "PRIVATE_ONLY"}
    created = call(server, "POST", "/api/v1/api_keys", admin, body)
    assert created.status_code == 200, created.text
    strict = created.json()["data"]["apiKey"]
    for operation in ("text-parser", "search", "scrape"):
        assert a_call(server, strict, operation).status_code == 200
    assert charged(server, account_id) == sum(PRICES.values())
