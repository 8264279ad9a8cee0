"""Anthropic Messages ⇄ OpenAI chat for the upstream adapter (providers/anthropic/), pure functions.

The request Tollway sends (OpenAI → Anthropic) and the response it reads back (Anthropic → OpenAI),
plus what both directions share. The inbound `/v1/messages` surface (the reverse of both) is inbound.py.
"""

from __future__ import annotations

import time
from typing import Any

from tollway.dialects.content import (
    Image,
    append_turn,
    arguments_object,
    image_of,
    parts,
    split_system,
    tool_call,
)
from tollway.dialects.translation import (
    EFFORT_BUDGETS,
    THINKING_BLOCKS,
    cache_hint,
    json_schema_of,
    refusal,
    refuse_non_function_tools,
    refuse_present,
    signed_thinking,
)

JSON = dict[str, Any]
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers may omit it
# The media types the Messages API takes for a base64 image; it refuses any other.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

UPSTREAM = "an Anthropic upstream"
# OpenAI chat fields the Messages API has no counterpart for (dialects/translation.py).
NO_MEANING = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "prediction",
    "audio",
    "web_search_options",
    "functions",
    "function_call",
    *("min_p", "repetition_penalty", "min_temp", "max_temp", "stop_token_ids"),  # Venice's sampling
)

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


# -- OpenAI → Anthropic (the upstream request) ---------------------------------------------------


def _image_block(image: Image) -> JSON:
    if image.data is not None:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": image.media_type, "data": image.data},
        }
    return {"type": "image", "source": {"type": "url", "url": image.url}}


def _blocks(content: Any) -> list[JSON]:
    blocks: list[JSON] = []
    for part in parts(content):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append(cache_hint({"type": "text", "text": part["text"]}, part))
        elif (image := image_of(part, IMAGE_TYPES)) is not None:
            blocks.append(cache_hint(_image_block(image), part))
    return blocks


def _system(messages: Any, text: str) -> Any:
    """The system prompt: its text, or its blocks when a part carries a cache breakpoint."""
    blocks = [
        block
        for m in messages or ()
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
        for block in _blocks(m.get("content"))
    ]
    return blocks if any("cache_control" in b for b in blocks) else text


def _tool(tool: JSON) -> JSON | None:
    function = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not function.get("name"):
        return None
    out: JSON = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True  # the input must follow input_schema (Anthropic's strict tool use)
    return cache_hint(out, tool)


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    out: JSON | None = None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def tool_use_block(call: JSON, fallback_id: str) -> JSON:
    """An OpenAI tool call as a tool_use block."""
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or fallback_id,
        "name": function.get("name") or "",
        "input": arguments_object(function.get("arguments")),
    }


def _refuse_untranslatable(body: JSON) -> None:
    refuse_present(body, NO_MEANING, UPSTREAM)
    if body.get("modalities") not in (None, ["text"]):
        raise refusal("modalities", UPSTREAM, "Anthropic answers in text.")
    refuse_non_function_tools(body, UPSTREAM)


def _thinking(effort: Any, out: JSON) -> None:
    if effort not in EFFORT_BUDGETS:
        raise refusal("reasoning_effort", UPSTREAM, f"Send one of {', '.join(EFFORT_BUDGETS)}.")
    if effort == "none":
        return  # Anthropic thinks only when asked
    # Anthropic needs 1024 <= budget_tokens < max_tokens: the budget is at most the cap less one.
    budget = min(EFFORT_BUDGETS[effort], out["max_tokens"] - 1)
    if budget < 1024:
        raise refusal("reasoning_effort", UPSTREAM, "Thinking needs an output cap above 1024 tokens.")
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def request_from_openai(body: JSON) -> JSON:
    _refuse_untranslatable(body)
    system, rest = split_system(body.get("messages") or ())
    messages: list[JSON] = []
    for message in rest:
        role = message.get("role")
        if role == "assistant":
            # Signed thinking from an earlier answer goes back first, as Anthropic requires on a
            # turn that used tools with extended thinking (dialects/translation.py THINKING_BLOCKS).
            blocks = [*signed_thinking(message.get(THINKING_BLOCKS)), *_blocks(message.get("content"))]
            for call in message.get("tool_calls") or ():
                blocks.append(tool_use_block(call, f"toolu_{len(blocks)}"))
            append_turn(messages, "assistant", blocks, "content")
        elif role == "tool":
            result: JSON = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or ""}
            content = message.get("content")
            result["content"] = content if isinstance(content, str) else _blocks(content)
            append_turn(messages, "user", [result], "content")
        else:
            append_turn(messages, "user", _blocks(message.get("content")), "content")
    out: JSON = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = _system(body.get("messages"), system)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [t for t in (_tool(tool) for tool in body.get("tools") or ()) if t is not None]
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    effort = body.get("reasoning_effort")
    if effort is not None:
        _thinking(effort, out)
    schema = json_schema_of(body.get("response_format"), UPSTREAM)
    if schema is not None:
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return out


# -- Anthropic → OpenAI (the upstream response) --------------------------------------------------


def usage_to_openai(usage: Any) -> JSON | None:
    """Anthropic's input_tokens exclude cache reads and writes; OpenAI's prompt_tokens include them."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = usage["input_tokens"] + cache_read + cache_write
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def response_to_openai(message: JSON) -> JSON:
    texts: list[str] = []
    calls: list[JSON] = []
    thinking = signed_thinking(message.get("content"))
    for block in message.get("content") or ():
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply[THINKING_BLOCKS] = thinking
    out: JSON = {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": STOP_TO_FINISH.get(message.get("stop_reason") or "", "stop"),
            }
        ],
    }
    usage = usage_to_openai(message.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out
