"""No silent drops: a field a translation cannot carry to the other dialect is a 400 naming it.

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


# OpenAI chat fields whose neutral value changes nothing, so sending it drops nothing.
NEUTRAL = {"presence_penalty": 0, "frequency_penalty": 0, "n": 1, "logprobs": False, "logit_bias": {}}


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
