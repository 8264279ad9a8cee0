"""What translations between dialects share: no silent drops, and reasoning effort ⇄ thinking budget.

No silent drops: a field a translation cannot carry to the other dialect is a 400 naming it.

Each upstream translation (anthropic/shapes.py, gemini/shapes.py) and each inbound one (anthropic/
inbound.py, gemini/inbound.py) either gives a field its meaning in the other dialect or refuses it
here, so that a client that asked for JSON, log probabilities or a hosted tool never gets prose
without a word. A refusal raised while a call is routed releases its hold: nothing is charged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tollway.dialects.content import collapse
from tollway.errors import ErrorCode, TollwayError


def cache_hint(part: dict[str, Any], block: Any) -> dict[str, Any]:
    """`part` with the `cache_control` of `block` (Anthropic's prompt-cache breakpoint), if it has one.

    The internal shape carries it on content parts, system parts and tools, where Anthropic's
    translation puts it back; OpenAI-compatible and local runtimes cache prompts by themselves and
    get the body without it (`without_cache_hints`); Gemini's translation builds parts anew."""
    if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _bare(items: Any) -> Any:
    """`items` without cache hints; text-only content becomes a string again, as it was before the hint."""
    if not isinstance(items, list) or not any(isinstance(i, dict) and "cache_control" in i for i in items):
        return items
    bare = [{k: v for k, v in i.items() if k != "cache_control"} if isinstance(i, dict) else i for i in items]
    if all(isinstance(i, dict) and i.get("type") == "text" and isinstance(i.get("text"), str) for i in bare):
        return collapse(bare)
    return bare


# An assistant message's signed reasoning from an Anthropic upstream (`thinking` blocks with their
# `signature`, `redacted_thinking` with its `data`), carried in the internal shape so the next turn can
# replay it (Anthropic requires it on a tool-use turn with extended thinking). Only an Anthropic upstream
# reads it; OpenAI-compatible upstreams never see it (without_cache_hints drops it).
THINKING_BLOCKS = "thinking_blocks"


def signed_thinking(blocks: Any) -> list[dict[str, Any]]:
    """The replayable thinking blocks among `blocks`: thinking with a signature, redacted_thinking with data."""
    kept: list[dict[str, Any]] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "thinking" and isinstance(block.get("signature"), str) and block["signature"]:
            kept.append(
                {
                    "type": "thinking",
                    "thinking": str(block.get("thinking") or ""),
                    "signature": block["signature"],
                }
            )
        elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            kept.append({"type": "redacted_thinking", "data": block["data"]})
    return kept


# A Gemini upstream's `thoughtSignature` on a functionCall part rides on the internal tool call where
# Google's own OpenAI-compatible API puts it, `extra_content.google.thought_signature`, so the next turn
# can send it back (Gemini requires it on function calls with thinking). Only Gemini reads it.
EXTRA_CONTENT = "extra_content"


def thought_signature(call: Any) -> str | None:
    google = ((call.get(EXTRA_CONTENT) or {}) if isinstance(call, dict) else {}).get("google")
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def with_thought_signature(call: dict[str, Any], signature: Any) -> dict[str, Any]:
    if isinstance(signature, str) and signature:
        call[EXTRA_CONTENT] = {"google": {"thought_signature": signature}}
    return call


def _without_thinking(message: Any) -> Any:
    """A message without what only Anthropic (thinking_blocks) or Gemini (thought signatures) reads."""
    if not isinstance(message, dict):
        return message
    listed = message.get("tool_calls")
    calls: list[Any] = listed if isinstance(listed, list) else []
    signed = any(isinstance(c, dict) and EXTRA_CONTENT in c for c in calls)
    if THINKING_BLOCKS not in message and not signed:
        return message
    out = {k: v for k, v in message.items() if k != THINKING_BLOCKS}
    if signed:
        out["tool_calls"] = [
            {k: v for k, v in c.items() if k != EXTRA_CONTENT} if isinstance(c, dict) else c for c in calls
        ]
    return out


def without_cache_hints(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body without `cache_control` and replayed Anthropic thinking (`thinking_blocks`), which
    only Anthropic reads (a copy where there was one; `body` itself otherwise)."""
    messages = body.get("messages")
    tools = body.get("tools")
    bare_messages = [
        {**_without_thinking(m), "content": _bare(m.get("content"))}
        if isinstance(m, dict)
        and (_bare(m.get("content")) is not m.get("content") or _without_thinking(m) is not m)
        else m
        for m in messages or ()
    ]
    changed = any(a is not b for a, b in zip(bare_messages, messages or (), strict=True))
    bare_tools = _bare(tools)
    if not changed and bare_tools is tools:
        return body
    return {**body, "messages": bare_messages, **({"tools": bare_tools} if tools is not None else {})}


def refusal(param: str, where: str, hint: str = "") -> TollwayError:
    """The 400 for `param`, which has no meaning on `where` (e.g. "an Anthropic upstream")."""
    message = f"`{param}` cannot be honoured on {where}; send the request without it."
    return TollwayError(ErrorCode.VALIDATION, f"{message} {hint}".strip(), param=param)


# OpenAI's reasoning_effort as a thinking budget in tokens (Anthropic's budget_tokens, Gemini's
# thinkingBudget), and back: the internal shape carries reasoning as OpenAI does, an effort.
EFFORT_BUDGETS = {"none": 0, "minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}


def effort_of_budget(budget: int) -> str:
    """The effort whose budget is the largest not above `budget`: 0 is none, 1 to 1023 minimal."""
    if budget <= 0:
        return "none"
    return max(
        (e for e, b in EFFORT_BUDGETS.items() if 0 < b <= budget),
        key=EFFORT_BUDGETS.__getitem__,
        default="minimal",
    )


# OpenAI chat fields whose neutral value changes nothing, so sending it drops nothing.
NEUTRAL = {
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "n": 1,
    "logprobs": False,
    "logit_bias": {},
    "service_tier": "auto",
}


def refuse_present(body: dict[str, Any], fields: Iterable[str], where: str) -> None:
    """Refuse the first of `fields` that `body` sets to something other than nothing or its neutral value."""
    for name in fields:
        value = body.get(name)
        if value is not None and not (name in NEUTRAL and value == NEUTRAL[name]):
            raise refusal(name, where)


def refuse_non_function_tools(body: dict[str, Any], where: str) -> None:
    """Only function tools translate; a hosted tool (web search, file search…) is refused by index."""
    for position, tool in enumerate(body.get("tools") or ()):
        if isinstance(tool, dict) and tool.get("type", "function") != "function":
            raise refusal(
                f"tools.{position}.type", where, f"Only function tools are served ({tool.get('type')!r})."
            )


def json_schema_of(response_format: Any, where: str) -> dict[str, Any] | None:
    """The JSON schema an OpenAI `response_format` asks for; None for text. `json_object` (JSON of
    any shape) is refused where the other dialect only takes a schema."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in (None, "text"):
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return schema
        raise refusal("response_format.json_schema.schema", where, "It must be a JSON schema object.")
    raise refusal("response_format.type", where, "Send json_schema with the schema the answer must follow.")
