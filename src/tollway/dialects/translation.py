"""What translations between dialects share: no silent drops, and reasoning effort ⇄ thinking budget.

No silent drops: a field a translation cannot carry to the other dialect is a 400 naming it.

Each upstream translation (anthropic/shapes.py, gemini/shapes.py) and each inbound one (anthropic/
shapes.py, gemini/inbound.py) either gives a field its meaning in the other dialect or refuses it
here, so that a client that asked for JSON, log probabilities or a hosted tool never gets prose
without a word. A refusal raised while a call is routed releases its hold: nothing is charged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tollway.errors import ErrorCode, TollwayError


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
