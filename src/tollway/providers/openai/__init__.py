"""The `openai` provider kind: any OpenAI-compatible upstream (OpenAI, OpenRouter, Venice, vLLM, Ollama …)."""

from tollway.providers.openai.provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
