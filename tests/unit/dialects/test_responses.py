"""The Responses dialect's pure translations: input items → chat messages, the JSON Schema check,
chat answers → Response objects, and the stream state machine's event order."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from tollway.dialects.responses import json_schema, state
from tollway.dialects.responses.shapes import request_to_chat, response_from_chat, responses_param
from tollway.dialects.responses.stream import FromChat
from tollway.errors import ErrorCode, TollwayError


def chat(**fields: Any) -> dict[str, Any]:
    return request_to_chat({"model": "m", **fields})


def refused(**fields: Any) -> TollwayError:
    with pytest.raises(TollwayError) as caught:
        chat(**fields)
    return caught.value


def test_a_string_input_and_instructions_are_a_system_and_a_user_message() -> None:
    body = chat(input="hi", instructions="be brief", max_output_tokens=5, temperature=0.5, user="u1")
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"], body["user"]) == (5, 0.5, "u1")
    assert "stream" not in body


def test_parallel_function_calls_ride_one_assistant_message_and_outputs_become_tool_messages() -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "two cities"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # an earlier answer's, sent back: no chat meaning
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"c":"a"}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"c":"b"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ]
    messages = chat(input=items)["messages"]
    assert messages[0] == {"role": "user", "content": "two cities"}
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c1", "c2"] and messages[1]["content"] is None
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_images_keep_their_detail_and_files_are_refused() -> None:
    part = {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
    [message] = chat(input=[{"role": "user", "content": [part]}])["messages"]
    assert message["content"] == [
        {"type": "image_url", "image_url": {"url": part["image_url"], "detail": "low"}}
    ]
    error = refused(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}])
    assert error.param == "input.0.content.0"
    assert refused(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]).param == (
        "input.0.content.0.image_url"
    )


def test_an_output_answering_a_later_call_is_refused() -> None:
    items = [
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
        {"type": "function_call", "call_id": "c1", "name": "w"},
    ]
    assert refused(input=items).param == "input.0.call_id"


def test_tools_tool_choice_text_format_and_streaming_translate() -> None:
    tool = {"type": "function", "name": "w", "parameters": {"type": "object"}, "strict": True}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = chat(
        input="x",
        tools=[tool],
        tool_choice={"type": "function", "name": "w"},
        parallel_tool_calls=False,
        reasoning={"effort": "low"},
        text={"format": {"type": "json_schema", "name": "p", "schema": schema, "strict": True}},
        stream=True,
    )
    assert body["tools"] == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert (body["parallel_tool_calls"], body["reasoning_effort"]) == (False, "low")
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": schema, "strict": True},
    }
    assert body["stream_options"] == {"include_usage": True}
    assert chat(input="x", text={"format": {"type": "json_object"}})["response_format"] == {
        "type": "json_object"
    }
    assert refused(input="x", tools=[tool], tool_choice={"type": "file_search"}).param == "tool_choice.type"


class Nested(BaseModel):
    tags: list[str]
    child: Nested | None = None


def test_json_schema_check_passes_pydantic_schemas_and_names_the_bad_keyword() -> None:
    json_schema.check(Nested.model_json_schema(), "s")  # $defs, $ref, anyOf, items
    for schema, param in [
        ({"type": "strng"}, "s.type"),
        ({"type": []}, "s.type"),
        ({"required": "a"}, "s.required"),
        ({"properties": []}, "s.properties"),
        ({"items": 3}, "s.items"),
        ({"anyOf": []}, "s.anyOf"),
        ({"$defs": {"x": {"type": 1}}}, "s.$defs.x.type"),
        ("object", "s"),
    ]:
        with pytest.raises(TollwayError) as caught:
            json_schema.check(schema, "s")
        assert caught.value.param == param, schema


def test_stateful_fields_are_refused_while_storage_is_off() -> None:
    for fields, param in [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ]:
        error = refused(input="x", **fields)
        assert (error.code.name, error.param) == ("RESPONSE_STORAGE_OFF", param)
        assert request_to_chat({"model": "m", "input": "x", **fields}, storage=True)["messages"]
    for fields, param in [({"conversation": "conv_1"}, "conversation"), ({"background": True}, "background")]:
        for storage in (False, True):
            with pytest.raises(TollwayError) as caught:
                request_to_chat({"model": "m", "input": "x", **fields}, storage=storage)
            assert (caught.value.code.name, caught.value.param) == ("VALIDATION", param)
    assert chat(input="x", store=False)["messages"]  # store=false is what stateless means


def test_a_chat_answer_becomes_a_response_with_reasoning_text_and_calls() -> None:
    result = {
        "choices": [
            {
                "finish_reason": "length",
                "message": {
                    "content": "partial",
                    "reasoning_content": "thinking",
                    "tool_calls": [{"id": "call_1", "function": {"name": "w", "arguments": "{}"}}],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    response = response_from_chat(result, {"model": "m", "input": "x", "metadata": {"a": "b"}}, "m")
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "function_call"]
    assert response["output"][1]["content"][0]["text"] == "partial"
    assert response["output"][2]["call_id"] == "call_1"
    assert response["status"] == "incomplete" and response["incomplete_details"] == {
        "reason": "max_output_tokens"
    }
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 17,
    }
    assert response["metadata"] == {"a": "b"} and response["store"] is False


def _events(frames: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(frame.split(b"\ndata: ", 1)[1]) for frame in frames]


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_the_stream_closes_the_text_item_before_a_tool_call_and_numbers_every_event() -> None:
    machine = FromChat({"model": "m", "input": "x"}, "m")
    frames = machine.start()
    frames += machine.feed(_delta(content="Let me look."))
    frames += machine.feed(
        _delta(tool_calls=[{"index": 0, "id": "call_9", "function": {"name": "w", "arguments": ""}}])
    )
    frames += machine.feed(_delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":1}'}}]))
    frames += machine.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    frames += machine.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    frames += machine.end()
    events = _events(frames)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert [(o["type"], o["output_index"]) for o in events if o["type"] == "response.output_item.done"] == [
        ("response.output_item.done", 0),
        ("response.output_item.done", 1),
    ]
    assert final["output"][0]["content"][0]["text"] == "Let me look."
    assert final["output"][1]["arguments"] == '{"a":1}' and final["output"][1]["call_id"] == "call_9"
    assert "'_part'" not in str(events)  # the machine's own bookkeeping never reaches the client
    assert final["usage"]["total_tokens"] == 7


def test_an_empty_answer_is_one_empty_message_and_a_failure_is_error_then_failed() -> None:
    machine = FromChat({"model": "m", "input": "x"}, "m")
    events = _events(machine.start() + machine.end())
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    broken = FromChat({"model": "m", "input": "x"}, "m")
    events = _events(broken.start() + broken.feed(_delta(content="a")) + broken.fail(429, "slow down"))
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "rate_limit_exceeded"
    assert (
        events[-1]["response"]["status"] == "failed"
        and events[-1]["response"]["error"]["message"] == "slow down"
    )


def test_a_pipeline_error_names_the_field_the_client_sent() -> None:
    for chat_param, param in [
        ("response_format", "text.format"),
        ("response_format.json_schema", "text.format.json_schema"),
        ("max_tokens", "max_output_tokens"),
        ("messages.3.content", "input"),
        ("tools.0.function.name", "tools.0.name"),
        ("temperature", "temperature"),
    ]:
        assert responses_param(TollwayError(ErrorCode.VALIDATION, param=chat_param)).param == param


def test_stored_input_is_items_with_ids_and_pages_like_openai() -> None:
    items = state.as_items("hello")
    assert items[0]["type"] == "message" and items[0]["id"].startswith("msg_")
    assert items[0]["content"] == [{"type": "input_text", "text": "hello"}]
    call = {"type": "function_call", "call_id": "c", "name": "n", "arguments": "{}"}
    previous = {"input": items, "response": {"output": [call]}}
    everything = state.continued(previous, [{"type": "function_call_output", "call_id": "c", "output": "x"}])
    assert [i["type"] for i in everything] == ["message", "function_call", "function_call_output"]
    assert (
        request_to_chat({"model": "m", "input": everything}, storage=True)["messages"][-1]["role"] == "tool"
    )
    ids = [i["id"] for i in everything]
    first = state.page(everything, "desc", 2, None)
    assert [i["id"] for i in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = state.page(everything, "desc", 2, first["last_id"])
    assert [i["id"] for i in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert state.page(everything, "asc", 5, "nope")["data"] == []


def test_what_no_chat_upstream_gives_is_refused_and_hints_pass() -> None:
    assert refused(input="x", truncation="auto").param == "truncation"
    assert refused(input="x", top_logprobs=3).param == "top_logprobs"
    hints = {"truncation": "disabled", "service_tier": "auto", "prompt_cache_key": "k", "include": []}
    assert chat(input="x", **hints)["messages"] == [{"role": "user", "content": "x"}]
