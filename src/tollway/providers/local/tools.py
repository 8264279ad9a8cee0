"""Tool calls on the embedded chat model: constrained by a grammar, never hoped for.

SmolLM2's chat template renders no tools, and a 135M model does not call one from prompting alone.
So when a request obliges a call (`tool_choice` "required", a named function, or `allowed_tools` in
mode "required"), the model is told which function(s) to call and llama.cpp's JSON-schema grammar
forces its answer to be exactly a call: the function's arguments matching its `parameters` schema (one
function), or `{"name": ..., "arguments": ...}` over the choices (several). That answer becomes OpenAI
`tool_calls`, buffered or streamed, and the Responses API's function_call items by the usual translation.

With `tool_choice` "auto" (or none given) the model answers in text: a grammar that lets it choose
between text and a call would make a 135M model's choice a coin toss, and an agent that reads a call it
did not mean loops. "none" is text too. Calls already in the history are rendered as text, since the
template drops an assistant message's `tool_calls`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollway.errors import ErrorCode, TollwayError

JSON = dict[str, Any]


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION, f"The embedded model cannot take this request: {message}", param=param
    )


def _function(tool: Any) -> JSON | None:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    return function if isinstance(function, dict) else None


def _named(entry: Any) -> str | None:
    """A function's name in a tool_choice or an allowed_tools entry (chat's nested or the flat shape)."""
    if not isinstance(entry, dict) or entry.get("type") != "function":
        return None
    inner = entry.get("function")
    name = inner.get("name") if isinstance(inner, dict) else entry.get("name")
    return name if isinstance(name, str) else None


def forced(body: JSON) -> list[JSON] | None:
    """The functions (`{"name", "description", "parameters"}`) a request obliges the model to call one
    of, or None when it may answer in text."""
    choice = body.get("tool_choice")
    functions = [f for f in map(_function, body.get("tools") or ()) if f is not None]
    if choice == "required":
        names = None
    elif isinstance(choice, dict) and choice.get("type") == "function":
        names = [_named(choice)]
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools")
        if not isinstance(allowed, dict) or allowed.get("mode") != "required":
            return None
        names = [_named(entry) for entry in allowed.get("tools") or ()]
    else:
        return None
    chosen = functions if names is None else [f for f in functions if f.get("name") in names]
    if not chosen:
        raise _bad("tool_choice names no function tool of the request's `tools`.", "tool_choice")
    return chosen


def _parameters(function: JSON) -> JSON:
    parameters = function.get("parameters")
    return parameters if isinstance(parameters, dict) and parameters else {"type": "object", "properties": {}}


def _schema(functions: list[JSON]) -> JSON:
    if len(functions) == 1:
        return _parameters(functions[0])
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": f["name"]}, "arguments": _parameters(f)},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for f in functions
        ]
    }


def _example(function: JSON) -> str:
    """`{"city": "..."}`: the arguments' shape, which a 135M model follows far better than a description
    (the grammar enforces the schema itself; the example only shows where the values go)."""
    properties = _parameters(function).get("properties")
    fields = properties if isinstance(properties, dict) else {}
    shown = ", ".join(
        f'"{name}": ' + ('"..."' if isinstance(spec, dict) and spec.get("type") == "string" else "...")
        for name, spec in fields.items()
    )
    return "{" + shown + "}"


def _instruction(functions: list[JSON]) -> str:
    def named(f: JSON) -> str:
        description = f.get("description")
        return f"`{f['name']}`" + (
            f" ({description})" if isinstance(description, str) and description else ""
        )

    if len(functions) == 1:
        return (
            f"Call the function {named(functions[0])} for the user's last message. Answer with its "
            f"arguments as JSON, e.g. {_example(functions[0])}."
        )
    listed = "\n".join(
        f'- {named(f)}: {{"name": "{f["name"]}", "arguments": {_example(f)}}}' for f in functions
    )
    return f"Answer the user's last message with a call of one of these functions, as JSON:\n{listed}"


def history_as_text(messages: list[Any]) -> list[Any]:
    """Assistant messages' tool calls as text the model can read (the template drops `tool_calls`)."""
    out = []
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if message.get("role") == "assistant" and isinstance(calls, list) and calls:
            said = (
                [message["content"]] if isinstance(message.get("content"), str) and message["content"] else []
            )
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    said.append(f"Called `{function.get('name')}` with {function.get('arguments')}.")
            message = {k: v for k, v in message.items() if k != "tool_calls"} | {"content": "\n".join(said)}
        out.append(message)
    return out


def constrain(request: JSON, functions: list[JSON]) -> JSON:
    """`request` (llama.cpp's) made to answer with a call: the instruction, the grammar's schema as
    its response format (a text format the client asked for applies to text answers, not to calls)."""
    out = {k: v for k, v in request.items() if k not in ("tools", "tool_choice", "response_format")}
    # Just before the user's last message: after it, the model tends to copy the instruction's example.
    messages = list(request["messages"])
    last = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1
    )
    at = last if last >= 0 else len(messages)
    out["messages"] = [*messages[:at], {"role": "system", "content": _instruction(functions)}, *messages[at:]]
    out["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "call", "schema": _schema(functions)},
    }
    return out


def _call(text: str, functions: list[JSON]) -> JSON | None:
    """The call in the model's answer, or None when it is not whole (cut by `max_tokens`)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if len(functions) == 1:
        name, arguments = functions[0]["name"], value
    elif isinstance(value, dict) and isinstance(value.get("name"), str):
        name, arguments = value["name"], value.get("arguments")
    else:
        return None
    return {
        "id": f"call_{secrets.token_hex(12)}",
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def as_calls(answer: JSON, functions: list[JSON]) -> JSON:
    """A buffered answer's choices as tool calls (a cut one stays text, `finish_reason` "length")."""
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            continue
        call = _call(message["content"], functions)
        if call is not None:
            choice["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice["finish_reason"] = "tool_calls"
    return answer


async def calls_stream(chunks: AsyncIterator[JSON], functions: list[JSON]) -> AsyncIterator[JSON]:
    """A streamed answer as tool-call chunks. The model's JSON is gathered per choice (a call is whole
    or it is not one) and sent as one `tool_calls` delta with its `finish_reason`; the usage chunk follows."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, Any] = {}
    head: JSON = {}
    usage: list[JSON] = []
    async for chunk in chunks:
        head = head or {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            said = choice.get("delta") or {}
            texts.setdefault(index, []).append(said.get("content") or "")
            if choice.get("finish_reason") is not None:
                finish[index] = choice["finish_reason"]
        if chunk.get("usage") is not None:
            usage.append(chunk)
    for index, parts in sorted(texts.items()):
        text = "".join(parts)
        call = _call(text, functions)
        if call is None:
            delta: JSON = {"role": "assistant", "content": text}
            reason = finish.get(index) or "length"
        else:
            delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]}
            reason = "tool_calls"
        yield {**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        yield {**head, "choices": [{"index": index, "delta": {}, "finish_reason": reason}]}
    for chunk in usage:
        yield {**chunk, "choices": []}
