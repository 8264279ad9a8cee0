"""The fake OpenAI upstream's legacy routes: `/v1/completions` and `/v1/moderations`.

Completions continue each prompt with "echo: " + its words (one token a word), `n` times each,
with `echo` putting the prompt first and `logprobs` giving each word -0.5; usage counts the words.
Moderations flag an input that contains "kill" (category `violence`, score 0.9), else score 0.01.
A scripted `status` behavior answers that status, as on every route of the fake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.common import JSON

CREATED = 1_700_000_000
Begin = Callable[[Request, str], Awaitable[tuple[JSON, JSON] | Response]]


def _sse(payload: JSON | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _logprobs(words: list[str]) -> JSON:
    tokens = [f" {w}" if i else w for i, w in enumerate(words)]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [-0.5] * len(tokens),
        "top_logprobs": [{t: -0.5} for t in tokens],
        "text_offset": offsets,
    }


def _choices(body: JSON) -> tuple[list[JSON], int, int]:
    prompts = body["prompt"] if isinstance(body.get("prompt"), list) else [str(body.get("prompt", ""))]
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    cap = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 16
    choices, completion = [], 0
    for prompt in prompts:
        words = ("echo: " + prompt).split()[:cap]
        for _ in range(n):
            text = " ".join(words)
            choice: JSON = {
                "text": (prompt + text) if body.get("echo") else text,
                "index": len(choices),
                "logprobs": _logprobs(words) if isinstance(body.get("logprobs"), int) else None,
                "finish_reason": "length" if len(words) == cap else "stop",
            }
            choices.append(choice)
            completion += len(words)
    prompt_tokens = sum(len(str(p).split()) for p in prompts)
    return choices, prompt_tokens, completion


def routes(begin: Begin) -> list[Route]:
    async def completions(request: Request) -> Response:
        begun = await begin(request, "completions")
        if isinstance(begun, Response):
            return begun
        body, _ = begun
        choices, prompt_tokens, completion = _choices(body)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        envelope: JSON = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": CREATED,
            "model": body.get("model"),
        }
        if not body.get("stream"):
            return JSONResponse({**envelope, "choices": choices, "usage": usage})

        async def frames() -> AsyncIterator[bytes]:
            for choice in choices:
                pieces = choice["text"].split(" ")
                for i, piece in enumerate(pieces):
                    text = piece if i == 0 else " " + piece
                    last = i == len(pieces) - 1
                    part = {
                        **choice,
                        "text": text,
                        "logprobs": None,
                        "finish_reason": choice["finish_reason"] if last else None,
                    }
                    yield _sse({**envelope, "choices": [part]})
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse({**envelope, "choices": [], "usage": usage})
            yield _sse("[DONE]")

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def moderations(request: Request) -> Response:
        begun = await begin(request, "moderations")
        if isinstance(begun, Response):
            return begun
        body, _ = begun
        inputs = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
        results = []
        for value in inputs:
            flagged = "kill" in str(value)
            score = 0.9 if flagged else 0.01
            results.append(
                {
                    "flagged": flagged,
                    "categories": {"violence": flagged},
                    "category_scores": {"violence": score},
                }
            )
        return JSONResponse({"id": "modr-fake", "model": body.get("model"), "results": results})

    return [
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/moderations", moderations, methods=["POST"]),
    ]
