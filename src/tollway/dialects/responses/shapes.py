"""Responses API ⇄ the internal chat shape, pure functions (no I/O).

Inbound: a checked Responses request (request.py) becomes the chat request the pipeline runs, so
every upstream kind that answers chat (OpenAI-compatible, Anthropic, Gemini, the embedded models)
answers Responses, tool calls included. Outbound: the chat answer becomes a Response object. What a
chat upstream cannot do (hosted tools, stored state) is a 400 naming the field before anything is held.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from tollway.dialects.content import text_of
from tollway.dialects.responses import json_schema
from tollway.dialects.responses.items import sealed_thinking, to_messages
from tollway.dialects.translation import THINKING_BLOCKS, signed_thinking
from tollway.errors import ErrorCode, TollwayError

JSON = dict[str, Any]
# finish_reason → why a response is incomplete (none: it is complete)
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


# -- Responses → chat (the inbound request) --------------------------------------------------------


def check_stateless(body: JSON, storage: bool) -> None:
    """What needs a stored response is refused while response storage is off; what needs more than
    storage (a conversation object, a background run, a stored prompt) is refused always."""
    if not storage:
        for field in ("store", "previous_response_id"):
            if body.get(field) not in (None, False):
                raise TollwayError(ErrorCode.RESPONSE_STORAGE_OFF, param=field)
    for field in ("conversation", "background", "prompt"):
        if body.get(field) not in (None, False):
            raise _bad(
                f"`{field}` is not served by this deployment: send the conversation in `input`"
                + (" (or continue one with `previous_response_id`)." if storage else "."),
                field,
            )


def check_served(body: JSON) -> None:
    """Fields with a meaning no chat upstream gives are refused rather than dropped; hints (cache keys,
    service tier, verbosity, `include`) are not promises and pass."""
    if body.get("truncation") == "auto":
        raise _bad("truncation `auto` is not served: send input that fits the model's context.", "truncation")
    if body.get("top_logprobs"):
        raise _bad(
            "Log probabilities are not served on /v1/responses: use /v1/chat/completions.", "top_logprobs"
        )


def _tools(tools: Any) -> list[JSON]:
    out: list[JSON] = []
    for index, tool in enumerate(tools or ()):
        if tool.get("type") != "function":
            raise _bad(
                f"Tool type {tool.get('type')!r} is not served: this deployment runs no hosted tools "
                "(web_search, file_search, code_interpreter, computer_use, …); only function tools are.",
                f"tools.{index}.type",
            )
        if not tool.get("name"):
            raise _bad("A function tool needs `name`.", f"tools.{index}.name")
        function: JSON = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        json_schema.check(function["parameters"], f"tools.{index}.parameters")
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "function":
        raise _bad("A function tool_choice needs `name`.", "tool_choice.name")
    raise _bad(
        f"tool_choice {kind!r} is not served by this deployment: use auto, none, required or a function.",
        "tool_choice.type",
    )


def _response_format(text: Any) -> JSON | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = fmt.get("schema")
    if not isinstance(schema, dict) or not fmt.get("name"):
        raise _bad("A json_schema text format needs `name` and `schema`.", "text.format.schema")
    json_schema.check(schema, "text.format.schema")
    spec: JSON = {"name": fmt["name"], "schema": schema}
    for key in ("strict", "description"):
        if fmt.get(key) is not None:
            spec[key] = fmt[key]
    return {"type": "json_schema", "json_schema": spec}


def request_to_chat(body: JSON, storage: bool = False) -> JSON:
    """A checked Responses request as the internal chat request (the pipeline validates it further).
    `storage`: whether response storage is on (the caller has already put a previous response's items
    into `input`)."""
    check_stateless(body, storage)
    check_served(body)
    out: JSON = {"model": body["model"], "messages": to_messages(body.get("instructions"), body.get("input"))}
    if not out["messages"]:
        raise _bad("`input` is empty: send a string or at least one item.", "input")
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if body.get(name) is not None:
            out[name] = body[name]
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"])
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the usage goes into response.completed
    return out


# The chat field a pipeline error names → the Responses field the client sent (messages: the index differs).
_PARAMS = {
    "response_format": "text.format",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "messages": "input",
}


def responses_param(err: TollwayError) -> TollwayError:
    """`err` naming the Responses field instead of the chat field it was raised for."""
    if err.param:
        head, _, rest = err.param.partition(".")
        if head in _PARAMS:
            err.param = _PARAMS[head] if head == "messages" else ".".join(filter(None, (_PARAMS[head], rest)))
        elif head == "tools":
            err.param = err.param.replace(".function.", ".", 1)
    return err


# -- chat → Responses (the answer) -----------------------------------------------------------------


def usage_from_chat(usage: Any) -> JSON:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(
                (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
            )
        },
        "total_tokens": prompt + completion,
        # What the ledger charged (issue 21's cost in every answer), when the chat answer carried it.
        **({"cost": usage["cost"]} if "cost" in usage else {}),
    }


def envelope(body: JSON, response_id: str, model: str, created_at: int | None = None) -> JSON:
    """A Response with what the request set and no output yet (`status` in_progress)."""
    text: JSON = body["text"] if isinstance(body.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": "in_progress",
        "model": model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store") is True,
        "temperature": body.get("temperature"),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
    }


def message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": [part]}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> JSON:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def reasoning_item(item_id: str, text: str) -> JSON:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def finish(response: JSON, output: list[JSON], finish_reason: str | None, usage: Any) -> JSON:
    """`response` completed (or incomplete, with the reason) with its output and usage."""
    reason = INCOMPLETE.get(finish_reason or "")
    response.update(
        output=output,
        status="incomplete" if reason else "completed",
        incomplete_details={"reason": reason} if reason else None,
        usage=usage_from_chat(usage),
    )
    return response


def response_from_chat(result: JSON, body: JSON, model: str) -> JSON:
    """The pipeline's chat answer as a Response object."""
    choice = (result.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[JSON] = []
    thinking = message.get("reasoning_content")
    signed = signed_thinking(message.get(THINKING_BLOCKS))
    if not (isinstance(thinking, str) and thinking):
        thinking = "".join(block.get("thinking", "") for block in signed)
    if thinking or signed:
        item = reasoning_item(new_id("rs"), thinking)
        if signed:  # an Anthropic upstream's signed thinking, for the caller to send back
            item["encrypted_content"] = sealed_thinking(signed)
        output.append(item)
    calls = message.get("tool_calls") or []
    text = text_of(message.get("content"))
    if text or not calls:
        output.append(message_item(new_id("msg"), text))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    response = envelope(body, new_id("resp"), model)
    return finish(response, output, choice.get("finish_reason"), result.get("usage"))
