"""Gemini generateContent ⇄ OpenAI chat for the inbound surface (api/gemini.py), pure functions.

The request a Gemini client sends (Gemini → OpenAI, for the pipeline) and the response it gets back
(OpenAI → Gemini). What the upstream adapter uses is shapes.py.
"""

from __future__ import annotations

from typing import Any

from tollway.dialects.content import (
    arguments_object,
    collapse,
    dumps,
    image_part,
    inline_image_part,
    text_of,
    tool_call,
)
from tollway.dialects.gemini.shapes import FINISH_FROM_OPENAI, GENERATION_FIELDS, JSON, get
from tollway.dialects.translation import effort_of_budget, refusal, thought_signature, with_thought_signature

INBOUND = "this deployment (the request is translated for its upstreams)"
# generationConfig fields the translation gives a meaning (below); any other is refused by name.
GENERATION_READ = {
    *GENERATION_FIELDS.values(),
    *("maxOutputTokens", "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema"),
    *("thinkingConfig", "responseModalities"),
}
# Hosted Gemini tools (a Tool holds functionDeclarations, or one of these): not served.
TOOL_KINDS = ("functionDeclarations",)

# -- Gemini → OpenAI (the inbound request) -------------------------------------------------------


def _openai_part(part: JSON) -> JSON | None:
    if isinstance(part.get("text"), str) and not part.get("thought"):
        return {"type": "text", "text": part["text"]}
    inline = get(part, "inlineData")
    if isinstance(inline, dict):
        return inline_image_part(get(inline, "mimeType"), inline.get("data"))
    file = get(part, "fileData")
    if isinstance(file, dict):
        return image_part(str(get(file, "fileUri") or ""))
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _refuse_inbound(body: JSON) -> None:
    if get(body, "cachedContent") is not None:
        raise refusal("cachedContent", INBOUND, "Gemini context caches are not served.")
    if get(body, "safetySettings"):  # filter thresholds: no upstream behind the translation reads them
        raise refusal("safetySettings", INBOUND, "Safety thresholds are the upstream's own here.")
    for key in get(body, "generationConfig") or {}:
        if _camel(key) not in GENERATION_READ:
            raise refusal(f"generationConfig.{_camel(key)}", INBOUND)
    for position, tool in enumerate(body.get("tools") or ()):
        for key in tool if isinstance(tool, dict) else ():
            if _camel(key) not in TOOL_KINDS:
                raise refusal(
                    f"tools.{position}.{_camel(key)}", INBOUND, "Only function declarations are served."
                )


def request_to_openai(body: JSON, model: str, *, stream: bool) -> JSON:
    _refuse_inbound(body)
    out: JSON = {"model": model, "messages": _messages_to_openai(body)}
    _generation_to_openai(get(body, "generationConfig") or {}, out)
    _tools_to_openai(body, out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _messages_to_openai(body: JSON) -> list[JSON]:
    messages: list[JSON] = []
    system = get(body, "systemInstruction")
    if isinstance(system, str):
        system = {"parts": [{"text": system}]}
    if isinstance(system, dict):
        text = "".join(p.get("text") or "" for p in get(system, "parts") or () if isinstance(p, dict))
        if text:
            messages.append({"role": "system", "content": text})
    pending_ids: dict[str, list[str]] = {}  # function name → ids of its calls awaiting a response
    counter = 0
    for content in body.get("contents") or ():
        if not isinstance(content, dict):
            continue
        gemini_parts = [p for p in get(content, "parts") or () if isinstance(p, dict)]
        if content.get("role") == "model":
            openai_parts = [p for p in (_openai_part(x) for x in gemini_parts) if p is not None]
            reply: JSON = {"role": "assistant", "content": collapse(openai_parts) if openai_parts else None}
            calls = []
            for part in gemini_parts:
                call = get(part, "functionCall")
                if isinstance(call, dict):
                    call_id = str(call.get("id") or f"call_{counter}")
                    counter += 1
                    pending_ids.setdefault(str(call.get("name")), []).append(call_id)
                    named = tool_call(call_id, call.get("name"), call.get("args"))
                    calls.append(with_thought_signature(named, get(part, "thoughtSignature")))
            if calls:
                reply["tool_calls"] = calls
            messages.append(reply)
            continue
        user: list[JSON] = []
        for part in gemini_parts:
            result = get(part, "functionResponse")
            if isinstance(result, dict):
                name = str(result.get("name"))
                waiting = pending_ids.get(name) or []
                call_id = str(result.get("id") or (waiting.pop(0) if waiting else f"call_{name}"))
                messages.append(
                    {"role": "tool", "tool_call_id": call_id, "content": dumps(result.get("response") or {})}
                )
            elif (converted := _openai_part(part)) is not None:
                user.append(converted)
        if user:
            messages.append({"role": "user", "content": collapse(user)})
    return messages


def _generation_to_openai(config: Any, out: JSON) -> None:
    for openai_name, gemini_name in GENERATION_FIELDS.items():
        value = get(config, gemini_name)
        if value is not None:
            out[openai_name] = value
    if get(config, "maxOutputTokens") is not None:
        out["max_tokens"] = get(config, "maxOutputTokens")
    if get(config, "stopSequences"):
        out["stop"] = get(config, "stopSequences")
    _format_to_openai(config, out)
    _thinking_to_openai(get(config, "thinkingConfig"), out)
    modalities = get(config, "responseModalities")
    if modalities is not None and [str(m).upper() for m in modalities] != ["TEXT"]:
        raise refusal("generationConfig.responseModalities", INBOUND, "Only TEXT answers are served.")


def _format_to_openai(config: Any, out: JSON) -> None:
    """responseMimeType JSON, with a schema (responseJsonSchema, or responseSchema's OpenAPI subset)."""
    mime = get(config, "responseMimeType")
    schema = get(config, "responseJsonSchema")
    if schema is None and get(config, "responseSchema") is not None:
        schema = json_schema(get(config, "responseSchema"))
    if mime not in (None, "text/plain", "application/json"):
        raise refusal("generationConfig.responseMimeType", INBOUND, "Send application/json or text/plain.")
    if schema is not None and mime != "application/json":
        raise refusal(
            "generationConfig.responseSchema", INBOUND, "A schema needs responseMimeType application/json."
        )
    if schema is not None:
        if not isinstance(schema, dict):
            raise refusal("generationConfig.responseSchema", INBOUND, "It must be a schema object.")
        spec = {"name": "response", "strict": False, "schema": schema}
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif mime == "application/json":
        out["response_format"] = {"type": "json_object"}


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset Schema as JSON Schema: types in lower case, `nullable` as a null type."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: json_schema(value) for key, value in schema.items() if key != "nullable"}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
        if schema.get("nullable") is True:
            out["type"] = [out["type"], "null"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: json_schema(value) for name, value in schema["properties"].items()}
    return out


def _thinking_to_openai(thinking: Any, out: JSON) -> None:
    """thinkingBudget (0 off, -1 the model's own choice) or thinkingLevel, as reasoning_effort."""
    if thinking is None:
        return
    if not isinstance(thinking, dict):
        raise refusal("generationConfig.thinkingConfig", INBOUND, "It must be an object.")
    if get(thinking, "includeThoughts"):
        raise refusal(
            "generationConfig.thinkingConfig.includeThoughts", INBOUND, "Thoughts are not returned."
        )
    level, budget = get(thinking, "thinkingLevel"), get(thinking, "thinkingBudget")
    if isinstance(level, str):
        out["reasoning_effort"] = level.lower()
    elif isinstance(budget, int) and not isinstance(budget, bool) and budget != -1:
        out["reasoning_effort"] = effort_of_budget(budget)


def _tools_to_openai(body: JSON, out: JSON) -> None:
    tools = []
    for tool in body.get("tools") or ():
        for declaration in get(tool, "functionDeclarations") or ():
            if isinstance(declaration, dict) and declaration.get("name"):
                function: JSON = {"name": declaration["name"]}
                if declaration.get("description"):
                    function["description"] = declaration["description"]
                schema = declaration.get("parameters") or get(declaration, "parametersJsonSchema")
                function["parameters"] = schema or {"type": "object", "properties": {}}
                tools.append({"type": "function", "function": function})
    if tools:
        out["tools"] = tools
        calling = get(get(body, "toolConfig"), "functionCallingConfig")
        mode = str(get(calling, "mode") or "").upper()
        allowed = get(calling, "allowedFunctionNames") or []
        if mode == "ANY" and len(allowed) == 1:
            out["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        elif mode in ("ANY", "AUTO", "NONE"):
            out["tool_choice"] = {"ANY": "required", "AUTO": "auto", "NONE": "none"}[mode]


# -- OpenAI → Gemini (the inbound response, whole or one stream chunk) -----------------------------


def usage_from_openai(usage: Any) -> JSON:
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    out: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - reasoning,
        "totalTokenCount": prompt + completion,
    }
    if cached:
        out["cachedContentTokenCount"] = cached
    if reasoning:
        out["thoughtsTokenCount"] = reasoning
    if isinstance(usage.get("cost"), float):  # Tollway's charge (USD), kept in every dialect's usage
        out["cost"] = usage["cost"]
    return out


def candidate_from_openai(index: int, text: str, calls: list[JSON], finish: str | None) -> JSON:
    gemini_parts: list[JSON] = [{"text": text}] if text else []
    for call in calls:
        function = call.get("function") or {}
        part: JSON = {
            "functionCall": {
                "name": function.get("name") or "",
                "args": arguments_object(function.get("arguments")),
            }
        }
        if signature := thought_signature(call):
            part["thoughtSignature"] = signature
        gemini_parts.append(part)
    candidate: JSON = {"content": {"role": "model", "parts": gemini_parts}, "index": index}
    if finish:
        candidate["finishReason"] = FINISH_FROM_OPENAI.get(finish, "OTHER")
    return candidate


def response_from_openai(result: JSON, model: str) -> JSON:
    candidates = []
    for position, choice in enumerate(result.get("choices") or ()):
        message = choice.get("message") or {}
        candidates.append(
            candidate_from_openai(
                int(choice.get("index") or position),
                text_of(message.get("content")),
                list(message.get("tool_calls") or ()),
                choice.get("finish_reason") or "stop",
            )
        )
    return {
        "candidates": candidates,
        "usageMetadata": usage_from_openai(result.get("usage")),
        "modelVersion": model,
        "responseId": str(result.get("id") or ""),
    }
