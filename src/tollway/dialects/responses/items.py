"""Responses `input` items → internal chat messages, pure. Every item either has a meaning in chat or
is a 400 that names it: nothing is dropped without a word, except `reasoning` items, which an earlier
answer returned for the caller to send back and which no chat upstream takes; one that carries an
Anthropic upstream's signed thinking (`encrypted_content`, see `sealed_thinking`) goes back on the
assistant turn that follows it, which Anthropic requires on a tool-use turn with extended thinking."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from tollway.dialects.content import collapse, image_part
from tollway.dialects.translation import THINKING_BLOCKS, signed_thinking
from tollway.errors import ErrorCode, TollwayError

JSON = dict[str, Any]
THINKING_PREFIX = "tollway-thinking-v1."  # not encrypted: the reasoning item shows the same text
_REPLAY = "_thinking"  # a placeholder role: the thinking of the next assistant turn
HOSTED_ITEMS = frozenset(
    {
        "file_search_call",
        "web_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
    }
)


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def _part(part: JSON, param: str) -> JSON:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    if kind == "input_image":
        if not part.get("image_url"):
            raise _bad(
                "An input_image needs `image_url` (a URL or a data URL); uploaded files (`file_id`) "
                "are not served by this deployment.",
                f"{param}.image_url",
            )
        out = image_part(part["image_url"])
        if part.get("detail") in ("low", "high"):
            out["image_url"]["detail"] = part["detail"]
        return out
    if kind == "input_file":
        raise _bad("input_file parts are not served by this deployment: send the text, or an image.", param)
    raise _bad(f"Unknown content part type {kind!r}.", f"{param}.type")


def _content(content: Any, param: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    return collapse([_part(p, f"{param}.{i}") for i, p in enumerate(content or ())])


def _output_text(output: Any, param: str) -> str | list[JSON]:
    """A function_call_output's `output`: a string, or parts (text and images)."""
    return output if isinstance(output, str) else _content(output, param)


def to_messages(instructions: Any, items: Any) -> list[JSON]:
    """`instructions` and `input` (a string or items) as chat messages; 400 naming the item otherwise."""
    messages: list[JSON] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    calls: set[str] = set()
    for index, item in enumerate(items or ()):
        _item(item, f"input.{index}", messages, calls)
    return _with_thinking(messages)


def sealed_thinking(blocks: list[JSON]) -> str:
    """Signed thinking blocks as a reasoning item's `encrypted_content` (the caller sends it back)."""
    return THINKING_PREFIX + base64.urlsafe_b64encode(orjson.dumps(blocks)).decode()


def opened_thinking(value: Any) -> list[JSON]:
    """The signed thinking blocks of an `encrypted_content` this deployment wrote; [] for any other."""
    if not isinstance(value, str) or not value.startswith(THINKING_PREFIX):
        return []
    try:
        return signed_thinking(orjson.loads(base64.urlsafe_b64decode(value[len(THINKING_PREFIX) :])))
    except (binascii.Error, ValueError):
        return []


def _with_thinking(messages: list[JSON]) -> list[JSON]:
    """Replayed thinking put on the assistant turn right after it (dropped if none follows)."""
    out: list[JSON] = []
    pending: list[JSON] = []
    for message in messages:
        if message["role"] == _REPLAY:
            pending += message[THINKING_BLOCKS]
            continue
        if pending and message["role"] == "assistant":
            message = {**message, THINKING_BLOCKS: pending}
        pending = []
        out.append(message)
    return out


def _item(item: JSON, param: str, messages: list[JSON], calls: set[str]) -> None:
    kind = item.get("type") or ("message" if item.get("role") else None)
    if kind == "message":
        role = item.get("role")
        if role is None:
            raise _bad("A message item needs `role`.", f"{param}.role")
        messages.append({"role": role, "content": _content(item.get("content"), f"{param}.content")})
    elif kind == "function_call":
        _function_call(item, param, messages, calls)
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if not call_id or call_id not in calls:
            raise _bad(
                f"No function_call with call_id {call_id!r} comes before this function_call_output in "
                "`input`: send the function_call item too (this deployment keeps no earlier responses).",
                f"{param}.call_id",
            )
        output = _output_text(item.get("output"), f"{param}.output")
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    elif kind == "reasoning":
        if blocks := opened_thinking(item.get("encrypted_content")):
            messages.append({"role": _REPLAY, THINKING_BLOCKS: blocks})
    elif kind == "item_reference":
        # Resolved from stored responses before this (api/responses.py); one left is not resolvable.
        raise _bad("This item_reference names no stored item: send the item itself.", f"{param}.type")
    elif kind in HOSTED_ITEMS:
        raise _bad(f"{kind} items belong to tools this deployment does not run.", f"{param}.type")
    else:
        raise _bad(f"Unknown input item type {kind!r}.", f"{param}.type")


def _function_call(item: JSON, param: str, messages: list[JSON], calls: set[str]) -> None:
    for field in ("call_id", "name"):
        if not item.get(field):
            raise _bad(f"A function_call item needs `{field}`.", f"{param}.{field}")
    call = {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
    }
    calls.add(item["call_id"])
    last = messages[-1] if messages else None
    # Parallel calls are consecutive items; chat carries them on one assistant message.
    if last is not None and last.get("role") == "assistant":
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
