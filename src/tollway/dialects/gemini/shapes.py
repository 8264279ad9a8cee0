"""Gemini generateContent ⇄ OpenAI chat for the upstream adapter (providers/gemini/), pure functions.

The request Tollway sends (OpenAI → Gemini) and the response it reads back (Gemini → OpenAI), plus what
both directions share. The inbound `/v1beta/models/{model}:generateContent` surface is inbound.py.
Gemini's REST API takes camelCase and snake_case field names alike; inbound both are read.
"""

from __future__ import annotations

import time
from typing import Any

from tollway.dialects.content import (
    append_turn,
    arguments_object,
    image_of,
    parts,
    split_system,
    text_of,
    tool_call,
)
from tollway.dialects.translation import (
    EFFORT_BUDGETS,
    refusal,
    refuse_non_function_tools,
    refuse_present,
    thought_signature,
    with_thought_signature,
)

JSON = dict[str, Any]
UPSTREAM = "a Gemini upstream"
# OpenAI chat fields generateContent has no counterpart for (dialects/translation.py).
NO_MEANING = (
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "prediction",
    "audio",
    "web_search_options",
    "functions",
    "function_call",
    *("min_p", "repetition_penalty", "min_temp", "max_temp", "stop_token_ids"),  # Venice's sampling
)
FINISH_TO_OPENAI = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
FINISH_FROM_OPENAI = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
}
GENERATION_FIELDS = {  # OpenAI field → generationConfig field
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}


def get(obj: Any, camel: str) -> Any:
    """`obj[camel]`, or its snake_case spelling."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


# -- OpenAI → Gemini (the upstream request) ------------------------------------------------------


def _part(part: JSON) -> JSON | None:
    if part.get("type") == "text" and part.get("text"):
        return {"text": part["text"]}
    # Any media type: Gemini's inlineData takes PDFs, audio and video as well as images.
    if (image := image_of(part)) is not None:
        if image.data is not None:
            return {"inlineData": {"mimeType": image.media_type, "data": image.data}}
        mime = "image/png" if image.url.lower().endswith(".png") else "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": image.url}}
    return None


def _parts(content: Any) -> list[JSON]:
    return [p for p in (_part(x) for x in parts(content)) if p is not None]


def _response_object(content: Any) -> JSON:
    """A tool message's content as functionResponse.response, which must be an object."""
    text = content if isinstance(content, str) else text_of(content)
    value = arguments_object(text)
    return value if value and "arguments" not in value else {"content": text}


def request_from_openai(body: JSON) -> JSON:
    refuse_present(body, NO_MEANING, UPSTREAM)
    if body.get("modalities") not in (None, ["text"]):
        raise refusal("modalities", UPSTREAM, "Only text answers are translated.")
    refuse_non_function_tools(body, UPSTREAM)
    system, rest = split_system(body.get("messages") or ())
    out: JSON = {"contents": _contents_from_openai(rest)}
    if system:
        out["systemInstruction"] = {"parts": [{"text": system}]}
    generation = _generation_from_openai(body)
    if generation:
        out["generationConfig"] = generation
    _tools_from_openai(body, out)
    return out


def _contents_from_openai(rest: list[JSON]) -> list[JSON]:
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool call id → function name: functionResponse needs the name
    for message in rest:
        role = message.get("role")
        if role == "assistant":
            new = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[str(call.get("id"))] = function.get("name") or ""
                part: JSON = {
                    "functionCall": {
                        "name": function.get("name") or "",
                        "args": arguments_object(function.get("arguments")),
                    }
                }
                if signature := thought_signature(call):  # replayed as Gemini gave it
                    part["thoughtSignature"] = signature
                new.append(part)
            append_turn(contents, "model", new, "parts")
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            response = {
                "name": names.get(call_id, message.get("name") or call_id),
                "response": _response_object(message.get("content")),
            }
            append_turn(contents, "user", [{"functionResponse": response}], "parts")
        else:
            append_turn(contents, "user", _parts(message.get("content")), "parts")
    return contents


def _generation_from_openai(body: JSON) -> JSON:
    generation: JSON = {
        gemini: body[openai_name]
        for openai_name, gemini in GENERATION_FIELDS.items()
        if body.get(openai_name) is not None
    }
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        generation["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORT_BUDGETS:
            raise refusal("reasoning_effort", UPSTREAM, f"Send one of {', '.join(EFFORT_BUDGETS)}.")
        generation["thinkingConfig"] = {"thinkingBudget": EFFORT_BUDGETS[effort]}
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        generation["responseMimeType"] = "application/json"
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise refusal("response_format.json_schema.schema", UPSTREAM, "It must be a JSON schema object.")
        # responseJsonSchema takes JSON Schema as OpenAI's strict schemas write it (additionalProperties
        # and all); responseSchema is an OpenAPI subset that refuses those keywords.
        generation["responseJsonSchema"] = schema
    return generation


def _tools_from_openai(body: JSON, out: JSON) -> None:
    declarations = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            declaration: JSON = {"name": function["name"]}
            if function.get("description"):
                declaration["description"] = function["description"]
            if function.get("parameters"):
                declaration["parameters"] = function["parameters"]
            declarations.append(declaration)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        choice = body.get("tool_choice")
        config: JSON | None = None
        if choice in ("auto", "none"):
            config = {"mode": str(choice).upper()}
        elif choice == "required":
            config = {"mode": "ANY"}
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            config = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
        strict = any(
            isinstance(t, dict) and (t.get("function") or {}).get("strict") is True for t in body["tools"]
        )
        if strict and (config is None or config["mode"] == "AUTO"):
            config = {"mode": "VALIDATED"}  # calls, when made, follow their schema: OpenAI's `strict`
        if config is not None:
            out["toolConfig"] = {"functionCallingConfig": config}


# -- Gemini → OpenAI (the upstream response, whole or one stream event) -----------------------------


def usage_to_openai(metadata: Any) -> JSON | None:
    """candidatesTokenCount excludes thoughts; OpenAI's completion_tokens include reasoning tokens."""
    if not isinstance(metadata, dict) or not isinstance(get(metadata, "promptTokenCount"), int):
        return None
    prompt = int(get(metadata, "promptTokenCount"))
    thoughts = int(get(metadata, "thoughtsTokenCount") or 0)
    completion = int(get(metadata, "candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(get(metadata, "cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def candidate_delta(candidate: JSON, first_tool_index: int = 0) -> tuple[str, list[JSON], str | None]:
    """(text, tool calls, finish_reason) of one candidate; thought parts are not answer text."""
    texts: list[str] = []
    calls: list[JSON] = []
    for part in get(candidate.get("content") or {}, "parts") or ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = get(part, "functionCall")
        if isinstance(call, dict):
            index = first_tool_index + len(calls)
            named = tool_call(call.get("id") or f"call_{index}", call.get("name") or "", call.get("args"))
            calls.append(with_thought_signature({"index": index, **named}, get(part, "thoughtSignature")))
    reason = get(candidate, "finishReason")
    finish = None
    if reason:
        finish = FINISH_TO_OPENAI.get(str(reason), "stop")
    return "".join(texts), calls, finish


def response_to_openai(response: JSON, model: str) -> JSON:
    choices = []
    for position, candidate in enumerate(response.get("candidates") or ()):
        text, calls, finish = candidate_delta(candidate)
        message: JSON = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            finish = "tool_calls" if finish in (None, "stop") else finish
        choices.append(
            {
                "index": int(candidate.get("index") or position),
                "message": message,
                "finish_reason": finish or "stop",
            }
        )
    out: JSON = {
        "id": str(get(response, "responseId") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(get(response, "modelVersion") or model),
        "choices": choices,
    }
    usage = usage_to_openai(get(response, "usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out
