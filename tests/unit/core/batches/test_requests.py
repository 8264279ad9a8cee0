"""A batch input file checked line by line (core/batches/requests.py), and the batch price (prices.batch_price)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollway.core.batches.requests import ENDPOINTS, endpoint, parse
from tollway.core.money.prices import batch_price
from tollway.errors import TollwayError


def line(custom_id: str = "a", **changes: Any) -> bytes:
    value = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}
    return json.dumps({**value, **changes}).encode()


def refused(data: bytes, max_line_bytes: int = 1000, max_lines: int = 10) -> str:
    with pytest.raises(TollwayError) as caught:
        parse(data, max_line_bytes=max_line_bytes, max_lines=max_lines)
    assert caught.value.status == 400
    return caught.value.message


def test_good_lines_keep_their_numbers_and_a_trailing_newline_ends_the_file() -> None:
    lines = parse(line("a") + b"\n" + line("b") + b"\n\n", max_line_bytes=1000, max_lines=10)
    assert [(x.number, x.custom_id, x.model) for x in lines] == [(1, "a", "m"), (2, "b", "m")]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\n".join([line(str(i)) for i in range(6)] + [b"{not json"]), "Line 7: not a JSON object"),
        (line("a") + b"\n" + line("a"), "Line 2: custom_id 'a' is used on line 1"),
        (
            line(url="/v1/images/generations"),
            "Line 1: batches do not support the url '/v1/images/generations'",
        ),
        (line(method="GET"), 'Line 1: `method` must be "POST"'),
        (line(body={"messages": []}), "Line 1: `body` must be"),
        (line(custom_id=""), "Line 1: `custom_id`"),
        (line(extra=1), "Line 1: unknown field"),
        (b"[1, 2]", "Line 1: not a JSON object"),
        (b"\xff\xfe", "Line 1: not a JSON object"),
        (b"\n\n", "no requests"),
        (line(body={"model": "m", "x": "\u0000"}), "NUL"),
    ],
)
def test_a_bad_line_is_named(data: bytes, named: str) -> None:
    assert named in refused(data)


def test_limits_of_a_line_and_of_the_file() -> None:
    assert "Line 2: " in refused(line("a") + b"\n" + line("b", body={"model": "m" * 200}), max_line_bytes=150)
    assert "at most 2" in refused(b"\n".join(line(str(i)) for i in range(3)), max_lines=2)


def test_one_table_of_endpoints_and_others_named() -> None:
    assert set(ENDPOINTS) == {"/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses"}
    with pytest.raises(TollwayError) as caught:
        endpoint("/v1/moderations")
    assert "'/v1/moderations'" in caught.value.message and caught.value.param == "endpoint"


def test_batch_price_is_the_discounted_price_rounded_up() -> None:
    assert batch_price(1001, None) == 1001
    assert batch_price(1001, "0.5") == 501
    assert batch_price(1000, "0.5") == 500
    assert batch_price(7, "0.25") == 6  # 5.25 → 6
    assert batch_price(0, "0.5") == 0


@pytest.mark.parametrize("bad", ["1", "1.5", "-0.1", "half"])
def test_a_catalog_batch_discount_is_a_fraction_below_one(bad: str) -> None:
    from pydantic import ValidationError

    from tollway.base.config import PricingConfig

    assert PricingConfig(input="1", batch_discount="0.5").batch_discount == "0.5"
    with pytest.raises(ValidationError):
        PricingConfig(input="1", batch_discount=bad)
