"""The one rule for USD amounts a client sends (core/money/amounts.py), case by case."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tollway.core.money.amounts import MAX_NANO, PositiveUsdAmount, UsdAmount, parse_usd, usd_nano
from tollway.errors import ErrorCode, TollwayError


@pytest.mark.parametrize(
    ("value", "nano"),
    [
        ("10", 10_000_000_000),
        ("0.25", 250_000_000),
        ("0.000000001", 1),
        ("0010.10", 10_100_000_000),
        ("1000000000", MAX_NANO),
        ("1000000000.000000000", MAX_NANO),
        ("0", 0),
        (3, 3_000_000_000),
        (2.5, 2_500_000_000),
        (0.1, 100_000_000),
        (1e-9, 1),
        (-0.0, 0),
    ],
)
def test_exact_amounts(value: Any, nano: int) -> None:
    assert usd_nano(value) == nano


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1e30", "no exponent"),
        ("1E3", "no exponent"),
        (1e30, "at most 1000000000 USD"),
        ("-1", "negative"),
        ("-0", "negative"),
        (-5, "negative"),
        (-0.5, "negative"),
        (-1e30, "negative"),
        ("NaN", "decimal string"),
        ("sNaN", "decimal string"),
        ("Infinity", "decimal string"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        ("9223372036.854775808", "at most"),  # 2^63 nano-USD
        ("9223372036854775808", "at most"),
        (2**63, "at most"),
        (2**200, "at most"),
        ("1" * 5000, "decimal string"),  # far too long to be an amount: not even parsed
        ("1000000000.000000001", "at most"),
        ("0.0000000001", "9 decimal places"),
        ("1.0000000000", "9 decimal places"),
        (1e-10, "9 decimal places"),
        (5e-324, "9 decimal places"),
        (12345678.123456789, "send it as a string"),
        (" 1", "decimal string"),
        ("1 ", "decimal string"),
        ("+1", "decimal string"),
        ("1_000", "decimal string"),
        ("1,5", "decimal string"),
        ("0x10", "decimal string"),
        ("١٢", "decimal string"),  # Arabic-Indic digits: Decimal() would take them
        (".5", "decimal string"),
        ("5.", "decimal string"),
        ("", "decimal string"),
        (True, "decimal string"),
        (None, "decimal string"),
        ([1], "decimal string"),
        ({"usd": 1}, "decimal string"),
    ],
)
def test_bad_amounts_say_what_is_wrong(value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        usd_nano(value)


def test_zero_is_refused_where_an_amount_must_be_positive() -> None:
    for zero in ("0", 0, 0.0, "0.000000000"):
        with pytest.raises(ValueError, match="more than zero"):
            usd_nano(zero, positive=True)


def test_parse_usd_is_a_400_naming_the_field() -> None:
    with pytest.raises(TollwayError) as caught:
        parse_usd("1e30", "amount_usd")
    assert (caught.value.code, caught.value.param) == (ErrorCode.VALIDATION, "amount_usd")
    assert "`amount_usd`" in caught.value.message


class _Body(BaseModel):
    credit: UsdAmount = "0"
    limit: PositiveUsdAmount | None = None


def test_pydantic_types_hold_the_canonical_string_and_name_the_field() -> None:
    body = _Body.model_validate({"credit": 2.5, "limit": "0.000000001"})
    assert (body.credit, body.limit) == ("2.500000000", "0.000000001")
    for bad in ({"credit": "1e30"}, {"limit": "0"}, {"limit": 1e30}):
        with pytest.raises(ValidationError) as caught:
            _Body.model_validate(bad)
        assert caught.value.errors()[0]["loc"] == tuple(bad)
