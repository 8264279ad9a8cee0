"""The `gemini` provider kind (generateContent) and its pure shape translations."""

from tollway.providers.gemini.provider import GeminiProvider

__all__ = ["GeminiProvider"]
