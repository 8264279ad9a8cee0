"""Venice's error shape: the message, the stable code, the request id, and a zod-style `details` tree."""

from __future__ import annotations

from tollway.dialects.venice import details_of, venice_error
from tollway.errors import ErrorCode, TollwayError


def test_a_validation_error_names_its_field_in_a_zod_style_tree() -> None:
    err = TollwayError(ErrorCode.VALIDATION, "Invalid `messages.0.content`.", param="messages.0.content")
    assert venice_error(err, "req_1") == {
        "error": "Invalid `messages.0.content`.",
        "code": "VALIDATION",
        "request_id": "req_1",
        "details": {
            "_errors": [],
            "messages": {
                "_errors": [],
                "0": {"_errors": [], "content": {"_errors": ["Invalid `messages.0.content`."]}},
            },
        },
    }


def test_list_indexes_in_brackets_are_levels_of_the_tree() -> None:
    assert details_of("tools[1].type", "bad") == {
        "_errors": [],
        "tools": {"_errors": [], "1": {"_errors": [], "type": {"_errors": ["bad"]}}},
    }


def test_an_error_without_a_field_has_no_details_and_keeps_its_extra_fields() -> None:
    err = TollwayError(ErrorCode.INSUFFICIENT_BALANCE, extra={"required": "0.01", "code": "ignored"})
    body = venice_error(err, "req_2")
    assert body == {
        "error": ErrorCode.INSUFFICIENT_BALANCE.default_message,
        "code": "INSUFFICIENT_BALANCE",
        "request_id": "req_2",
        "required": "0.01",
    }
