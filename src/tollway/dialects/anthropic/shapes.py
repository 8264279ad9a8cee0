"""Anthropic Messages ⇄ OpenAI chat, both directions, pure functions (no I/O).

Used by the upstream adapter (OpenAI request → Messages request, Messages response → OpenAI
response) and by the inbound `/v1/messages` surface (the reverse of both).
"""

from __future__ import annotations

import time
from typing import Any

from tollway.dialects.content import (
    Image,
    append_turn,
    arguments_object,
    collapse,
    image_of,
    image_part,
    inline_image_part,
    parts,
    split_system,
    text_of,
    tool_call,
)
from tollway.dialects.refusals import json_schema_of, refusal, refuse_non_function_tools, refuse_present

JSON = dict[str, Any]
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers may omit it
# The media types the Messages API takes for a base64 image; it refuses any other.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

UPSTREAM = "an Anthropic upstream"
# OpenAI chat fields the Messages API has no counterpart for (dialects/refusals.py).
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
    "reasoning_effort",
    "functions",
    "function_call",
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
            blocks.append({"type": "text", "text": part["text"]})
        elif (image := image_of(part, IMAGE_TYPES)) is not None:
            blocks.append(_image_block(image))
    return blocks


def _tool(tool: JSON) -> JSON | None:
    function = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not function.get("name"):
        return None
    out: JSON = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True  # the input must follow input_schema (Anthropic's strict tool use)
    return out


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


def _tool_use(call: JSON, fallback_id: str) -> JSON:
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


def request_from_openai(body: JSON) -> JSON:
    _refuse_untranslatable(body)
    system, rest = split_system(body.get("messages") or ())
    messages: list[JSON] = []
    for message in rest:
        role = message.get("role")
        if role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                blocks.append(_tool_use(call, f"toolu_{len(blocks)}"))
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
        out["system"] = system
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
    for block in message.get("content") or ():
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
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


# -- Anthropic → OpenAI (the inbound request) ----------------------------------------------------


def _openai_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[JSON] = []
    for block in content or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            out.append({"type": "text", "text": block.get("text") or ""})
        elif block.get("type") == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                out.append(inline_image_part(source.get("media_type"), source.get("data")))
            else:
                out.append(image_part(source.get("url") or ""))
    return out


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text") or "" for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


def request_to_openai(body: JSON) -> JSON:
    """An inbound Messages request as the internal OpenAI chat request (the pipeline validates it)."""
    out: JSON = {
        "model": body.get("model"),
        "messages": _messages_to_openai(body),
        "max_tokens": body.get("max_tokens"),
    }
    for name in ("temperature", "top_p", "top_k", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    _tools_to_openai(body, out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}  # the usage goes into message_delta
    return out


def _messages_to_openai(body: JSON) -> list[JSON]:
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        messages.append(
            {"role": "system", "content": system if isinstance(system, str) else _tool_result_text(system)}
        )
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or ())
        if role == "assistant":
            messages.append(_assistant_to_openai(blocks))
        else:
            _user_to_openai(blocks, messages)
    return messages


def _assistant_to_openai(blocks: list[Any]) -> JSON:
    texts = _openai_parts([b for b in blocks if isinstance(b, dict) and b.get("type") == "text"])
    reply: JSON = {"role": "assistant", "content": collapse(texts) if texts else None}
    calls = [
        tool_call(b.get("id"), b.get("name"), b.get("input"))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    if calls:
        reply["tool_calls"] = calls
    return reply


def _user_to_openai(blocks: list[Any], messages: list[JSON]) -> None:
    """A user turn: tool results become `tool` messages, in place; the rest goes in `user` messages."""
    pending: list[JSON] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            if pending:
                messages.append({"role": "user", "content": collapse(pending)})
                pending = []
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _tool_result_text(block.get("content")),
                }
            )
        else:
            pending.extend(_openai_parts([block]))
    if pending:
        messages.append({"role": "user", "content": collapse(pending)})


def _tools_to_openai(body: JSON, out: JSON) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": t.get("name"),
                **({"description": t["description"]} if t.get("description") else {}),
                "parameters": t.get("input_schema") or {"type": "object"},
            },
        }
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("name")
    ]
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "any":
                out["tool_choice"] = "required"
            elif kind in ("auto", "none"):
                out["tool_choice"] = kind
            elif kind == "tool":
                out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
            if choice.get("disable_parallel_tool_use"):
                out["parallel_tool_calls"] = False


# -- OpenAI → Anthropic (the inbound response) ---------------------------------------------------


def usage_from_openai(usage: Any) -> JSON:
    usage = usage if isinstance(usage, dict) else {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    out: JSON = {
        "input_tokens": max(0, int(usage.get("prompt_tokens") or 0) - cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }
    if isinstance(usage.get("cost"), float):  # Tollway's charge (USD), kept in every dialect's usage
        out["cost"] = usage["cost"]
    return out


def message_id(openai_id: str) -> str:
    return openai_id if openai_id.startswith("msg_") else f"msg_{openai_id}"


def response_from_openai(result: JSON, model: str) -> JSON:
    choice = (result.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[JSON] = []
    if text := text_of(message.get("content")):
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        content.append(_tool_use(call, f"toolu_{len(content)}"))
    return {
        "id": message_id(str(result.get("id") or "")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_from_openai(result.get("usage")),
    }
