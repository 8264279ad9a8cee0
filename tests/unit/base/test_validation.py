"""base/validation.py: a pydantic failure names the field the client wrote."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import BaseModel

from tollway.base.validation import param_of, validate
from tollway.errors import TollwayError


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("input", "str"), "input"),
        (("messages", 0, "content", "list[ContentPart]", 0, "text"), "messages.0.content.0.text"),
        (("messages", 0, "content", 0, "image_url", "ImageUrl", "url"), "messages.0.content.0.image_url.url"),
        (("generationConfig", "maxOutputTokens"), "generationConfig.maxOutputTokens"),
        (("tools", 0, "function-after[_complete(), Tool]", "type"), "tools.0.type"),
        ((), None),
    ],
)
def test_param_of_leaves_out_what_pydantic_adds(loc: tuple[int | str, ...], param: str | None) -> None:
    assert param_of(loc) == param


class Expiring(BaseModel):
    expires_at: datetime | None = None
    content: str | list[int] = ""


def test_an_instant_python_cannot_hold_in_utc_is_a_400() -> None:
    assert validate(Expiring, {"expires_at": "9999-12-31T00:00:00Z"}).expires_at is not None
    for instant in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(TollwayError) as caught:
            validate(Expiring, {"expires_at": instant})
        assert caught.value.param == "expires_at"


def test_the_deepest_error_of_a_union_is_the_one_named() -> None:
    with pytest.raises(TollwayError) as caught:
        validate(Expiring, {"content": [1, "x"]})
    assert caught.value.param == "content.1"
