"""Money a client sends us: one exact parser for every USD amount in the API (credits, key limits).

An amount is a decimal string of USD ("10", "0.25", "0.000000001") or a JSON number. Strings are
the exact form: ASCII digits, an optional point and at most 9 decimal places (a nano-USD); no sign
but "-" (refused as negative), no exponent, no spaces, no underscores. A JSON number arrives as a
float, whose shortest repr is what the client wrote when it has at most 15 significant digits;
longer ones may already have been rounded, so they are refused with a hint to send a string.
Anything above MAX_USD is refused, so no amount, and no balance built from them, can approach the
database's 64-bit integers (SQLite turns an overflowing sum into a float).

`parse_usd` gives nano-USD or a 400 naming the field; `UsdAmount` and `PositiveUsdAmount` are the
same rule as pydantic types (the field then holds the canonical "1.500000000" string).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from tollway.core.money.prices import NANO_PER_USD, nano_to_usd
from tollway.errors import ErrorCode, TollwayError

MAX_USD = 1_000_000_000
MAX_NANO = MAX_USD * NANO_PER_USD  # 1e18: 9 of them still fit a signed 64-bit integer
_PLACES = 9
_FLOAT_DIGITS = 15
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_EXAMPLE = 'a decimal string of USD such as "10.00"'


def usd_nano(value: object, *, positive: bool = False) -> int:
    """`value` as nano-USD, or ValueError saying what is wrong (pydantic shows it as the field's error)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be {_EXAMPLE}")
    if isinstance(value, int):
        nano = value * NANO_PER_USD if abs(value) <= MAX_USD else MAX_NANO + 1
    elif isinstance(value, float):
        nano = _float_nano(value)
    else:
        nano = _string_nano(value)
    if nano < 0:
        raise ValueError("must not be negative")
    if positive and nano == 0:
        raise ValueError(f"must be more than zero, {_EXAMPLE}")
    if nano > MAX_NANO:
        raise ValueError(f"must be at most {MAX_USD} USD")
    return nano


def _string_nano(value: str) -> int:
    match = _DECIMAL.fullmatch(value) if len(value) <= 64 else None
    if match is None:
        raise ValueError(f"must be {_EXAMPLE} (digits and one point; no exponent, sign or spaces)")
    sign, whole, fraction = match.groups()
    if sign:
        return -1  # "-0" too: an amount never carries a sign
    fraction = fraction or ""
    if len(fraction) > _PLACES:
        raise ValueError(f"has more than {_PLACES} decimal places; the smallest amount is 0.000000001 USD")
    if len(whole.lstrip("0")) > len(str(MAX_USD)):
        return MAX_NANO + 1  # too large: said by the caller without building a huge integer
    return int(whole) * NANO_PER_USD + int(fraction.ljust(_PLACES, "0"))


def _float_nano(value: float) -> int:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"must be a finite amount, {_EXAMPLE}")
    if abs(value) > MAX_USD:
        return -1 if value < 0 else MAX_NANO + 1
    exact = Decimal(repr(value))
    if len(exact.as_tuple().digits) > _FLOAT_DIGITS:
        raise ValueError(
            f"has too many digits for a JSON number to be exact; send it as a string, {_EXAMPLE}"
        )
    nano = exact * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ValueError(f"has more than {_PLACES} decimal places; the smallest amount is 0.000000001 USD")
    return int(nano)


def parse_usd(value: object, field: str, *, positive: bool = False) -> int:
    """`value` as nano-USD, or a 400 VALIDATION naming `field`."""
    try:
        return usd_nano(value, positive=positive)
    except ValueError as exc:
        raise TollwayError(ErrorCode.VALIDATION, f"Invalid `{field}`: {exc}.", param=field) from None


def _canonical(positive: bool) -> Any:
    def check(value: object) -> str:
        return nano_to_usd(usd_nano(value, positive=positive))

    return check


_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,9})?$", "examples": ["10.00"]},
        {"type": "number", "minimum": 0, "maximum": MAX_USD},
    ],
    "description": f"USD, at most 9 decimal places, at most {MAX_USD}",
}
UsdAmount = Annotated[str, BeforeValidator(_canonical(False)), WithJsonSchema(_SCHEMA)]
PositiveUsdAmount = Annotated[str, BeforeValidator(_canonical(True)), WithJsonSchema(_SCHEMA)]
