"""Embeddings beside their price (test_oracle.py prices them): what the answer and the records say.

The answer names the catalog's model (never the upstream's), reports the usage it was charged for,
and encodes vectors as asked; the usage row names the provider and where the usage came from. A
refused request (an unsupported option, an empty string) is a clear 400 that holds and charges
nothing.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from tests.money.harness import NANO, Money
from tollway.base import tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO


def _embed(money: Money, key: str, **body: Any) -> httpx2.Response:
    return money.call(key, "POST", "embeddings", json={"model": "m-embed", **body})


def test_the_answer_names_the_catalog_model_and_the_usage_it_was_charged_for(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    answer = _embed(fresh, key, input=["two words", "three more words"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "m-embed"
    usage = {k: v for k, v in body["usage"].items() if k != "cost"}
    assert usage == {"prompt_tokens": 5, "total_tokens": 5}  # the fake counts words
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert all(isinstance(x, float) for x in body["data"][0]["embedding"])
    assert (answer.headers["x-tollway-provider"], answer.headers["x-tollway-attempts"]) == ("fake", "1")
    [sent] = fresh.fake_requests()
    assert (sent["model"], sent["input"]) == ("text-embedding-3-small", ["two words", "three more words"])
    [row] = fresh.usage_rows(account)
    assert {
        k: row[k] for k in ("provider", "prompt_tokens", "completion_tokens", "usage_source", "outcome")
    } == {
        "provider": "fake",
        "prompt_tokens": 5,
        "completion_tokens": 0,
        "usage_source": "provider",
        "outcome": "completed",
    }
    assert (row["status_code"], row["cost_nano"]) == (200, fresh.charged(account))
    # The answer's cost is the ledger's charge, as a JSON number that is its exact decimal.
    assert Decimal(str(body["usage"]["cost"])) * 1_000_000_000 == row["cost_nano"] > 0
    assert Decimal(answer.headers["x-tollway-cost-usd"]) * 1_000_000_000 == row["cost_nano"]


def test_base64_vectors_are_the_float_vectors_packed_little_endian(fresh: Money) -> None:
    _, key = fresh.funded(CREDIT)
    floats = _embed(fresh, key, input="pack me").json()["data"][0]["embedding"]
    packed = _embed(fresh, key, input="pack me", encoding_format="base64").json()["data"][0]["embedding"]
    assert isinstance(packed, str)
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == [
        struct.unpack("<f", struct.pack("<f", x))[0] for x in floats
    ]


def test_one_string_is_estimated_as_a_list_of_one(fresh: Money) -> None:
    """Without usage from the upstream the charge is the estimate: a string is one input, not its characters."""
    text = "an input the upstream will not count for us"
    costs = []
    for given in (text, [text]):
        account, key = fresh.funded(CREDIT)
        fresh.script({"type": "usage", "mode": "none"})
        answer = _embed(fresh, key, input=given)
        assert answer.status_code == 200, answer.text
        fresh.settle_until(account, 1)
        [row] = fresh.usage_rows(account)
        assert row["usage_source"] == "estimated"
        costs.append(fresh.charged(account))
    assert costs[0] == costs[1] > 0


def test_dimensions_go_upstream_to_a_model_that_supports_them(fresh: Money) -> None:
    _, key = fresh.funded(CREDIT)
    answer = fresh.call(
        key, "POST", "embeddings", json={"model": "m-embed-dims", "input": "x", "dimensions": 8}
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"][0]["embedding"]) == 8
    assert fresh.fake_requests()[-1]["dimensions"] == 8


REFUSED = {
    "dimensions on a model without them": (
        {"input": "x", "dimensions": 8},
        "UNSUPPORTED_CAPABILITY",
        "dimensions",
        "'m-embed' does not support `dimensions`.",
    ),
    "an empty string": (
        {"input": ["fine", ""]},
        "VALIDATION",
        "input",
        "`input` must not contain empty strings.",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_refused_embedding_is_a_clear_400_that_holds_nothing(fresh: Money, name: str) -> None:
    body, code, param, message = REFUSED[name]
    account, key = fresh.funded(CREDIT)
    answer = _embed(fresh, key, **body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"], error["message"]) == (code, param, message)
    assert fresh.balances(account) == (CREDIT, 0)
    assert fresh.rows("select count(*) from ledger where account_id = ?", account) == [
        (1,)
    ]  # the credit only
    assert fresh.fake_requests() == []


def test_the_token_budget_is_taken_at_admission_for_the_estimate(fresh: Money) -> None:
    """`x-ratelimit-remaining-tokens` is the budget left once this request's estimate is taken."""
    tpm, texts = 3_000, ["count these words", "and these"]
    _, key = fresh.funded(CREDIT, rate_limits={"tpm": tpm})
    answer = _embed(fresh, key, input=texts)
    assert answer.status_code == 200, answer.text
    estimate = tokens.count(texts) + 2 * len(texts)
    assert abs(int(answer.headers["x-ratelimit-remaining-tokens"]) - (tpm - estimate)) <= 2  # Redis rounds µs
