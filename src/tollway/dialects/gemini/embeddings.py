"""Gemini `embedContent`, `batchEmbedContents` and `countTokens` ⇄ the internal OpenAI shapes, pure.

An embedding request becomes one OpenAI embeddings request (the pipeline charges it as it charges
`/v1/embeddings`); a countTokens request becomes the chat request whose prompt the hold would count.
Only text parts can be embedded or counted here: anything else in a content is a 400 naming it, as
are `taskType` and `title`, which an OpenAI-shaped embeddings model has no way to honour.
"""

from __future__ import annotations

from typing import Any

from tollway.dialects.gemini.inbound import request_to_openai
from tollway.dialects.gemini.request import checked_request
from tollway.dialects.gemini.shapes import JSON, get
from tollway.errors import ErrorCode, TollwayError

# Fields of an embed request with no meaning on the models Tollway embeds with (OpenAI-shaped):
# refused rather than dropped, so a caller never gets vectors made for another purpose unawares.
UNSUPPORTED = {"taskType": "task_type", "title": "title"}


def _refuse(param: str, message: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def _text(content: Any, where: str) -> str:
    if not isinstance(content, dict):
        raise _refuse(where, f"`{where}` must be a Content object with text parts.")
    texts = []
    for position, part in enumerate(get(content, "parts") or ()):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str) or len(part) != 1:
            raise _refuse(f"{where}.parts.{position}", "Only text parts can be embedded.")
        texts.append(part["text"])
    text = "".join(texts)
    if not text:
        raise _refuse(f"{where}.parts", "The content to embed has no text.")
    return text


def _dimensions(request: JSON, where: str) -> int | None:
    for camel, snake in UNSUPPORTED.items():
        if request.get(camel) is not None or request.get(snake) is not None:
            raise _refuse(
                f"{where}{camel}",
                f"`{camel}` is not supported by this deployment's embedding models; send the request "
                f"without it.",
            )
    value = get(request, "outputDimensionality")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise _refuse(f"{where}outputDimensionality", "`outputDimensionality` must be a positive integer.")
    return value


def embed_request_to_openai(body: Any, model: str, *, batch: bool) -> JSON:
    """`embedContent` (one content) or `batchEmbedContents` (`requests`, each for this model)."""
    if not isinstance(body, dict):
        raise _refuse("body", "The request body must be a JSON object.")
    requests: Any = [body]
    prefixes = [""]
    if batch:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise _refuse("requests", "`requests` must be a non-empty list of EmbedContentRequest objects.")
        prefixes = [f"requests.{n}." for n in range(len(requests))]
    texts, dimensions = [], set()
    for request, prefix in zip(requests, prefixes, strict=True):
        named = request.get("model")
        if batch and named is not None and str(named).removeprefix("models/") != model:
            raise _refuse(f"{prefix}model", f"Every request must be for the model in the URL ({model!r}).")
        texts.append(_text(request.get("content"), f"{prefix}content"))
        dimensions.add(_dimensions(request, prefix))
    if len(dimensions) > 1:
        raise _refuse("requests", "Every request of a batch must ask for the same `outputDimensionality`.")
    out: JSON = {"model": model, "input": texts}
    if (size := dimensions.pop()) is not None:
        out["dimensions"] = size
    return out


def embed_response_from_openai(result: JSON, *, batch: bool) -> JSON:
    vectors = [{"values": item.get("embedding")} for item in result.get("data") or ()]
    usage = result.get("usage") or {}
    metadata: JSON = {
        "promptTokenCount": usage.get("prompt_tokens"),
        "totalTokenCount": usage.get("total_tokens"),
    }
    if isinstance(usage.get("cost"), float):
        metadata["cost"] = usage["cost"]
    if batch:
        return {"embeddings": vectors, "usageMetadata": metadata}
    return {"embedding": vectors[0] if vectors else {"values": []}, "usageMetadata": metadata}


def count_request_to_openai(body: Any, model: str) -> JSON:
    """`countTokens`: `contents`, or a whole `generateContentRequest`, as the chat request it would be."""
    if not isinstance(body, dict):
        raise _refuse("body", "The request body must be a JSON object.")
    inner = get(body, "generateContentRequest")
    if inner is not None:
        if not isinstance(inner, dict):
            raise _refuse("generateContentRequest", "`generateContentRequest` must be an object.")
        return request_to_openai(checked_request(inner), model, stream=False)
    return request_to_openai(checked_request({"contents": body.get("contents")}), model, stream=False)
