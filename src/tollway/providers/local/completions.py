"""Legacy completions on the embedded model: a raw prompt, no chat template (llama.cpp's
`handle_completions`).

llama.cpp answers a list of prompts, or `n` > 1, with usage that counts one of them only; so every
(prompt, choice) pair runs on its own and the usages are summed: what is billed is what ran.
It has no fill-in-the-middle `suffix` here and no echo of the prompt's logprobs: those are refused
with a 400 naming the field (core/inference/completions.py asks `refusal` before anything is held).
Its logprobs come in chat's layout and are rewritten to the legacy one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from tollway.providers.local.chat import LlamaChat, refused_request

_PASSED = {
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "min_p",
    "top_k",
    "repeat_penalty",
}


def refusal(body: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) of what the embedded engine cannot do, or None."""
    if body.get("suffix"):
        return "suffix", "the embedded model has no fill-in-the-middle (`suffix`)"
    if body.get("echo") and body.get("logprobs") is not None:
        return "logprobs", "the embedded model gives no logprobs of an echoed prompt (`echo` with `logprobs`)"
    if body.get("best_of") not in (None, 1):
        return "best_of", "the embedded model does not rank candidates (`best_of`)"
    return None


def _legacy_logprobs(raw: Any, offset: int) -> dict[str, Any] | None:
    """llama.cpp's chat-layout logprobs ({"content": [...]}) in the legacy completions layout."""
    items = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return None
    tokens, logprobs, tops, offsets = [], [], [], []
    for item in items:
        token = str(item.get("token", ""))
        tokens.append(token)
        logprobs.append(item.get("logprob"))
        tops.append({str(t.get("token", "")): t.get("logprob") for t in item.get("top_logprobs") or ()})
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


def _request(body: dict[str, Any], prompt: str, stream: bool) -> dict[str, Any]:
    request = {k: v for k, v in body.items() if k in _PASSED}
    request["prompt"] = prompt
    if isinstance(body.get("logprobs"), int):
        request["logprobs"] = True
        request["top_logprobs"] = body["logprobs"]
    if stream:
        request["stream"], request["stream_options"] = True, {"include_usage": True}
    return request


def _pairs(body: dict[str, Any]) -> list[str]:
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    return [prompt for prompt in prompts for _ in range(int(body.get("n") or 1))]


def _usage(total: dict[str, int], usage: Any) -> None:
    if isinstance(usage, dict):
        for name in ("prompt_tokens", "completion_tokens"):
            total[name] = total.get(name, 0) + int(usage.get(name) or 0)


def _choice(raw: dict[str, Any], index: int, prompt: str, echo: bool) -> dict[str, Any]:
    text = str(raw.get("text") or "")
    start = len(prompt) if echo else 0
    return {
        "text": prompt + text if echo else text,
        "index": index,
        "logprobs": _legacy_logprobs(raw.get("logprobs"), start),
        "finish_reason": raw.get("finish_reason"),
    }


def _handle(engine: LlamaChat, request: dict[str, Any], on_chunk: Any = None) -> Any:
    server = engine.load()
    try:
        if on_chunk is None:
            return engine.check(server.handle_completions(request))
        return server.handle_completions(request, on_chunk)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise refused_request(str(exc) or type(exc).__name__) from None


async def complete(engine: LlamaChat, body: dict[str, Any]) -> dict[str, Any]:
    echo = bool(body.get("echo"))

    def run() -> dict[str, Any]:
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for index, prompt in enumerate(_pairs(body)):
            answer = _handle(engine, _request(body, prompt, False))
            _usage(usage, answer.get("usage"))
            choices.append(_choice((answer.get("choices") or [{}])[0], index, prompt, echo))
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": "cmpl-local", "object": "text_completion", "choices": choices, "usage": usage}

    return await asyncio.to_thread(run)


async def complete_stream(engine: LlamaChat, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """Each (prompt, choice) streamed in turn under its own index; one usage chunk, summed, at the end."""
    echo = bool(body.get("echo"))
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    for index, prompt in enumerate(_pairs(body)):
        first = True
        async for chunk in engine.stream(_request(body, prompt, True), handle="completions"):
            _usage(usage, chunk.pop("usage", None))
            for raw in chunk.get("choices") or ():
                choice = _choice(raw, index, prompt if first else "", echo)
                first = False
                yield {"id": "cmpl-local", "object": "text_completion", "choices": [choice]}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    yield {"id": "cmpl-local", "object": "text_completion", "choices": [], "usage": usage}
