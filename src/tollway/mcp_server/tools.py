"""Models, chat and embeddings: /v1/models, /v1/chat/completions, /v1/embeddings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from tollway.mcp_server.gateway import body, opened

ModelType = Literal["text", "embedding", "image", "tts", "stt", "video", "music", "upscale", "inpaint", "all"]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"] = Field(description="Who speaks this message.")
    content: str = Field(description="The message's text.")


async def list_models(
    ctx: Context,
    type: Annotated[ModelType, Field(description="Only models of this type.")] = "all",
    search: Annotated[str, Field(description="Only models whose id contains this (case-insensitive).")] = "",
) -> dict[str, Any]:
    """List the models this Tollway serves, with their type and prices in USD (per million tokens, per
    image, per second...). Use a model's `id` as the `model` argument of the other tools."""
    async with opened(ctx) as gateway:
        listing = await gateway.json("GET", "/v1/models", params={"type": type})
    models = [
        {
            "id": model["id"],
            "type": model.get("type"),
            "pricing": (model.get("model_spec") or {}).get("pricing"),
            "context_length": (model.get("model_spec") or {}).get("availableContextTokens"),
        }
        for model in listing.get("data", [])
        if search.lower() in str(model.get("id", "")).lower()
    ]
    return {"models": models}


async def chat(
    ctx: Context,
    model: Annotated[str, Field(min_length=1, description="A text model id (list_models type=text).")],
    messages: Annotated[
        list[Message], Field(min_length=1, description="The conversation so far, oldest first.")
    ],
    max_tokens: Annotated[int | None, Field(ge=1, description="The answer's length cap in tokens.")] = None,
    temperature: Annotated[float | None, Field(ge=0, le=2, description="Sampling temperature.")] = None,
) -> dict[str, Any]:
    """Ask a chat model. Charged to your balance like POST /v1/chat/completions: the answer's `cost_usd`
    is what the ledger charged."""
    payload = body(
        model=model,
        messages=[message.model_dump() for message in messages],
        max_tokens=max_tokens,
        temperature=temperature,
    )
    async with opened(ctx) as gateway:
        answer = await gateway.json("POST", "/v1/chat/completions", json=payload)
    choice = (answer.get("choices") or [{}])[0]
    usage = answer.get("usage") or {}
    return {
        "content": (choice.get("message") or {}).get("content"),
        "finish_reason": choice.get("finish_reason"),
        "model": answer.get("model"),
        "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
        "cost_usd": usage.get("cost"),
    }


async def embeddings(
    ctx: Context,
    model: Annotated[
        str, Field(min_length=1, description="An embedding model id (list_models type=embedding).")
    ],
    input: Annotated[list[str], Field(min_length=1, description="The texts to embed.")],
    dimensions: Annotated[int | None, Field(ge=1, description="Shorter vectors, if the model can.")] = None,
) -> dict[str, Any]:
    """Embed texts as vectors (POST /v1/embeddings), one per input, in order. Charged per input token."""
    async with opened(ctx) as gateway:
        answer = await gateway.json(
            "POST", "/v1/embeddings", json=body(model=model, input=input, dimensions=dimensions)
        )
    usage = answer.get("usage") or {}
    return {
        "embeddings": [item.get("embedding") for item in answer.get("data", [])],
        "prompt_tokens": usage.get("prompt_tokens"),
        "cost_usd": usage.get("cost"),
    }


TOOLS = (list_models, chat, embeddings)
