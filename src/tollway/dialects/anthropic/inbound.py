"""Anthropic Messages ⇄ OpenAI chat for the inbound `/v1/messages` surface (api/anthropic.py), pure.

The request an Anthropic client sends (Anthropic → OpenAI, for the pipeline) and the answer it gets
back (OpenAI → Anthropic). What the upstream adapter uses is shapes.py. A field the internal shape
cannot carry is refused with a 400 naming it (dialects/translation.py), never dropped.
"""

from __future__ import annotations

from typing import Any

from tollway.dialects.anthropic.shapes import FINISH_TO_STOP, JSON, tool_use_block
from tollway.dialects.content import collapse, image_part, inline_image_part, text_of, tool_call
from tollway.dialects.translation import (
    THINKING_BLOCKS,
    cache_hint,
    effort_of_budget,
    refusal,
    refuse_present,
    signed_thinking,
)

# -- Anthropic → OpenAI (the inbound request) ----------------------------------------------------


def _openai_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[JSON] = []
    for block in content or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            out.append(cache_hint({"type": "text", "text": block.get("text") or ""}, block))
        elif block.get("type") == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                out.append(cache_hint(inline_image_part(source.get("media_type"), source.get("data")), block))
            else:
                out.append(cache_hint(image_part(source.get("url") or ""), block))
    return out


def _hinted(blocks: Any) -> bool:
    return isinstance(blocks, list) and any(isinstance(b, dict) and "cache_control" in b for b in blocks)


def _tool_result_content(block: JSON) -> Any:
    """A tool_result's content: its text, or text parts when it carries a cache breakpoint."""
    content = block.get("content")
    if not _hinted(content) and "cache_control" not in block:
        return _tool_result_text(content)
    texts = (
        [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if isinstance(content, list)
        else []
    )
    found = _openai_parts(texts if isinstance(content, list) else [{"type": "text", "text": content or ""}])
    if found and "cache_control" in block:
        cache_hint(found[-1], block)
    return found


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text") or "" for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


INBOUND = "this deployment (the request is translated for its upstreams)"
# Messages fields that ask for an Anthropic-hosted facility the translation cannot carry.
NO_OPENAI_MEANING = ("container", "mcp_servers", "context_management", "service_tier")
# Content blocks the internal shape has a place for; signed thinking blocks replayed from an earlier answer
# go back to an Anthropic upstream as they were (thinking_blocks), and are dropped for any other.
BLOCK_TYPES = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})


def _refuse_inbound(body: JSON) -> None:
    refuse_present(body, NO_OPENAI_MEANING, INBOUND)
    for m, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for b, block in enumerate(content if isinstance(content, list) else ()):
            if isinstance(block, dict) and block.get("type") not in BLOCK_TYPES:
                raise refusal(
                    f"messages.{m}.content.{b}.type", INBOUND, f"{block.get('type')!r} blocks are not served."
                )
    for t, tool in enumerate(body.get("tools") or ()):
        if isinstance(tool, dict) and tool.get("type") not in (None, "custom"):
            raise refusal(f"tools.{t}.type", INBOUND, f"Only client tools are served ({tool.get('type')!r}).")


def _output_to_openai(body: JSON, out: JSON) -> None:
    """`output_config.format` (and the beta's `output_format`): JSON following a schema."""
    config = body.get("output_config")
    config = config if isinstance(config, dict) else {}
    for key in config:
        if key != "format":
            raise refusal(f"output_config.{key}", INBOUND)
    fmt = config.get("format") or body.get("output_format")
    if fmt is None:
        return
    where = "output_config.format" if config.get("format") is not None else "output_format"
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), dict)
    ):
        raise refusal(where, INBOUND, "It must be {type: json_schema, schema: {...}}.")
    out["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "response", "strict": True, "schema": fmt["schema"]},
    }


def _thinking_to_openai(body: JSON, out: JSON) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") in ("disabled", "adaptive"):
        return  # adaptive: the model decides, which is what an upstream does when no effort is named
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or not isinstance(budget, int) or isinstance(budget, bool):
        raise refusal("thinking", INBOUND, "Send {type: enabled, budget_tokens: N} or {type: disabled}.")
    out["reasoning_effort"] = effort_of_budget(budget)


def request_to_openai(body: JSON) -> JSON:
    """An inbound Messages request as the internal OpenAI chat request (the pipeline validates it)."""
    _refuse_inbound(body)
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
    _output_to_openai(body, out)
    _thinking_to_openai(body, out)
    return out


def _messages_to_openai(body: JSON) -> list[JSON]:
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        if isinstance(system, list) and _hinted(system):
            content: Any = _openai_parts(system)  # text parts, so each keeps its cache breakpoint
        else:
            content = system if isinstance(system, str) else _tool_result_text(system)
        messages.append({"role": "system", "content": content})
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
    if thinking := signed_thinking(blocks):  # replayed to an Anthropic upstream, dropped for others
        reply[THINKING_BLOCKS] = thinking
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
                    "content": _tool_result_content(block),
                }
            )
        else:
            pending.extend(_openai_parts([block]))
    if pending:
        messages.append({"role": "user", "content": collapse(pending)})


def _tools_to_openai(body: JSON, out: JSON) -> None:
    tools = [
        cache_hint(
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    **({"description": t["description"]} if t.get("description") else {}),
                    "parameters": t.get("input_schema") or {"type": "object"},
                    **({"strict": True} if t.get("strict") is True else {}),
                },
            },
            t,
        )
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
    content: list[JSON] = signed_thinking(message.get(THINKING_BLOCKS))
    if text := text_of(message.get("content")):
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        content.append(tool_use_block(call, f"toolu_{len(content)}"))
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
